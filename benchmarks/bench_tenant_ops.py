#!/usr/bin/env python3
"""Time the tenant operations on a converged lab host (see docs/benchmarks.md).

    lab/labctl up NAME --release bookworm && ansible-playbook -i INVENTORY site.yml
    .venv/bin/python benchmarks/bench_tenant_ops.py NAME [--hosting alpha] [--rounds 5]

1. trigger -> new spec served: as the tenant, rewrite the pod file in place with the other
   test image (lab/httpd:1 <-> :2), create scripts/pod_restart/pod_restart.run, then ask
   the pod's unix socket for /version every 50 ms until it answers with the new version.
2. update check of an unchanged pod: `systemctl --user start webhosting-pod-update.service`
   (pulls the images, compares digests, restarts nothing).

Everything is timed inside the lab host (one `labctl exec` per measurement), so the
figures do not include labctl's own start-up. The tenant's pod file is restored at the end.
"""

import argparse
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

LABCTL = Path(__file__).resolve().parents[1] / "lab" / "labctl"

ROUND = r"""
set -eu
name=$1 uid=$2 want=$3
root=/srv/hostings/$name
pod=$root/private/container-config/pod-$name.yaml
as_tenant() { setpriv --reuid=$uid --regid=$uid --init-groups "$@"; }
version() {
    curl -s --max-time 1 --unix-socket /run/webhosting-pods/$name/8080 \
        http://pod/version 2>/dev/null || true
}
as_tenant sh -c "sed -E 's|(lab/httpd):[12]|\1:$want|' $pod > /tmp/bench-pod.yaml \
    && cat /tmp/bench-pod.yaml > $pod"
start=$(date +%s%N)
as_tenant touch $root/scripts/pod_restart/pod_restart.run
i=0
while [ "$(version)" != "$want" ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || { echo timeout; exit 1; }
    sleep 0.05
done
end=$(date +%s%N)
echo $(( (end - start) / 1000000 ))
"""

UPDATE = r"""
set -eu
name=$1
pid() { systemctl --user --machine=$name@ show -p MainPID --value webhosting-pod.service; }
before=$(pid)
start=$(date +%s%N)
systemctl --user --machine=$name@ start webhosting-pod-update.service
end=$(date +%s%N)
[ "$(pid)" = "$before" ] || { echo restarted; exit 1; }
echo $(( (end - start) / 1000000 ))
"""


def lab(host, script, *args, stdin=None, timeout=300):
    """The output of shell `script` (with `args`) run in lab host `host`; exits on failure."""
    proc = subprocess.run(
        [str(LABCTL), "exec", host, "--", "/bin/sh", "-c", script, "bench", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit("%s: %s %s" % (host, proc.stdout.strip(), proc.stderr.strip()))
    return proc.stdout


def summary(label, values):
    print(
        "%-40s median %6.2f s  best %6.2f s  worst %6.2f s  (%d rounds)"
        % (label, statistics.median(values), min(values), max(values), len(values))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host", help="a converged lab host (lab/labctl up NAME)")
    parser.add_argument("--hosting", default="alpha")
    parser.add_argument("--uid", type=int, default=10001)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    pod = "/srv/hostings/%s/private/container-config/pod-%s.yaml" % (args.hosting, args.hosting)
    original = lab(args.host, "cat " + shlex.quote(pod))
    current = "2" if "lab/httpd:2" in original else "1"
    triggers, updates = [], []
    try:
        for i in range(args.rounds):
            want = "1" if (current == "2") == (i % 2 == 0) else "2"
            triggers.append(int(lab(args.host, ROUND, args.hosting, args.uid, want)) / 1000)
        for _ in range(args.rounds):
            updates.append(int(lab(args.host, UPDATE, args.hosting)) / 1000)
    finally:
        restore = "setpriv --reuid=%d --regid=%d --init-groups sh -c %s" % (
            args.uid,
            args.uid,
            shlex.quote("cat > " + pod),
        )
        lab(args.host, restore, stdin=original)
        lab(args.host, ROUND, args.hosting, args.uid, current)
    print("host %s, hosting %s" % (args.host, args.hosting))
    summary("trigger -> new spec served", triggers)
    summary("update check, unchanged images", updates)


if __name__ == "__main__":
    main()
