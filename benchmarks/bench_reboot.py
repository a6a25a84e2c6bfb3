#!/usr/bin/env python3
"""Time a host reboot until every hosting serves HTTPS again (see docs/benchmarks.md).

    lab/labctl up NAME --release bookworm && ansible-playbook -i INVENTORY site.yml
    .venv/bin/python benchmarks/bench_reboot.py NAME [NAME ...] [--rounds 3]

Per round and lab host: `labctl reboot NAME` (power off, boot the same disk; it returns once
the host's `systemctl is-system-running` says it is up), then, inside the host, `curl
https://<domain>/` for every hosting with a domain (the ingress role's nginx servers in
/etc/nginx/webhosting-pods.d) every 100 ms until each has answered 200 once. Printed: the
power-off, and the time from the start of the boot until every hosting serves (the part
after systemd reports the boot done is shown too). No converge runs.
"""

import argparse
import statistics
import subprocess
import sys
import time

from bench_tenant_ops import LABCTL, lab  # the same labctl exec, run as scripts here

# Every hosting domain nginx has a server for; then wait until each answers 200 once.
WAIT = r"""
set -eu
domains=$(grep -h '^ *server_name ' /etc/nginx/webhosting-pods.d/*.conf 2>/dev/null \
    | sed -E 's/^ *server_name +//; s/;.*//' | tr ' ' '\n' | grep -v '^www\.' | sort -u)
[ -n "$domains" ] || { echo "no hosting domains"; exit 1; }
start=$(date +%s%N)
left=$domains
i=0
while [ -n "$left" ]; do
    next=
    for d in $left; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "https://$d/" || true)
        [ "$code" = 200 ] || next="$next $d"
    done
    left=$next
    [ -z "$left" ] && break
    i=$((i + 1)); [ $i -lt 3000 ] || { echo "timeout:$left"; exit 1; }
    sleep 0.1
done
end=$(date +%s%N)
echo $(echo "$domains" | wc -l) $(( (end - start) / 1000000 ))
"""


def reboot(host):
    """(seconds of power-off, seconds of boot) of `labctl reboot`: timed from its own
    "booting NAME again" line, read as it is printed."""
    started = time.monotonic()
    booting = None
    proc = subprocess.Popen(
        [str(LABCTL), "reboot", host],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in proc.stdout:
        output.append(line)
        if booting is None and "booting %s again" % host in line:
            booting = time.monotonic()
    if proc.wait(timeout=600) != 0 or booting is None:
        sys.exit("%s: labctl reboot failed: %s" % (host, "".join(output)))
    return booting - started, time.monotonic() - booting


def wait_serving(host):
    count, millis = lab(host, WAIT, timeout=600).split()
    return int(count), int(millis) / 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hosts", nargs="+", metavar="NAME")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for host in args.hosts:
        offs, boots, serving = [], [], []
        count = 0
        for _ in range(args.rounds):
            off, boot = reboot(host)
            offs.append(off)
            boots.append(boot)
            count, seconds = wait_serving(host)
            serving.append(seconds)
        totals = [b + s for b, s in zip(boots, serving)]
        print(
            "%-14s %d hostings  power-off median %4.1f s  boot -> all hostings serve HTTPS:"
            " median %4.1f s, worst %4.1f s (of which after systemd is up: worst %4.1f s)"
            "  (%d rounds)"
            % (
                host,
                count,
                statistics.median(offs),
                statistics.median(totals),
                max(totals),
                max(serving),
                args.rounds,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
