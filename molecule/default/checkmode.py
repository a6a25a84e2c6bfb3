#!/usr/bin/env python3
"""On lab hosts that have never seen the roles: `site.yml --check` reports changes and
changes nothing.

Run by molecule's prepare step (prepare.yml), right after the hosts booted, before
converge. For each host, a snapshot of what the roles could touch (files and their
metadata under /etc, /srv, /usr/local, /var/lib, /var/backups; units and their states;
lingering users) is taken from the outside with `labctl exec`, then the real playbook
runs in check mode, then the snapshot is taken again and must be identical, while the
recap must count changes (a fresh host needs everything).

Usage: checkmode.py [--volatile PATTERN]... INVENTORY HOST... (exit 0 ok, 1 with the
differences). --volatile leaves out paths (find -path patterns) that running containers
write while the dry run runs: the upgrade scenario's hosts have pods running.
"""

import difflib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
LABCTL = PROJECT / "lab" / "labctl"

# Paths that change on their own on an idle host (timer stamps, seeds, caches).
VOLATILE = [
    "/var/lib/systemd/timers",
    "/var/lib/systemd/random-seed",
    "/var/lib/systemd/coredump",
    "/var/lib/systemd/pstore",
    "/var/lib/systemd/catalog",
    "/var/lib/logrotate",
    "/var/lib/apt/lists",
    "/var/lib/apt/periodic",
    "/var/lib/dhcp",
    "/var/lib/private",
    "/var/lib/lastlog",
    "/var/lib/containers/cache",
]

# Units that start and stop on their own: socket-activated services that exit when idle
# (podman 5's netavark DHCP proxy on Debian 13 quits after its idle timeout).
VOLATILE_UNITS = ["netavark-dhcp-proxy.service", "netavark-dhcp-proxy.socket"]


def snapshot_command(volatile=()):
    """The shell command that lists what the roles could touch; `volatile` adds find
    -path patterns to leave out (files that running containers write)."""
    return (
        "find /etc /srv /usr/local /var/lib /var/backups -xdev \\( "
        + " -o ".join(f"-path {shlex.quote(p)}" for p in [*VOLATILE, *volatile])
        + " \\) -prune -o -printf '%p %y %m %U %G %s %T@ %l\\n' 2>/dev/null | LC_ALL=C sort;"
        " echo '--- units';"
        " systemctl list-units --all --plain --no-legend --no-pager"
        " | awk '{print $1, $3, $4}' | grep -v -F"
        + "".join(f" -e {u}" for u in VOLATILE_UNITS)
        + " | LC_ALL=C sort;"
        " echo '--- lingering'; ls -A /var/lib/systemd/linger 2>/dev/null; true"
    )


def snapshot(host, volatile=()):
    proc = subprocess.run(
        [str(LABCTL), "exec", host, "--", "/bin/sh", "-c", snapshot_command(volatile)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return proc.stdout.splitlines()


def check_run(inventory, hosts):
    env = dict(os.environ)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    env.setdefault("ANSIBLE_CONFIG", str(PROJECT / "ansible.cfg"))
    proc = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            inventory,
            str(PROJECT / "site.yml"),
            "--check",
            "--limit",
            ",".join(hosts),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    try:
        stats = json.loads(proc.stdout)["stats"]
    except (ValueError, KeyError):
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit("check mode run: no JSON recap") from None
    return proc.returncode, stats


def main(argv):
    volatile = []
    while len(argv) > 2 and argv[1] == "--volatile":
        volatile.append(argv[2])
        argv = [argv[0], *argv[3:]]
    if len(argv) < 3:
        raise SystemExit(__doc__)
    inventory, hosts = argv[1], argv[2:]
    before = {h: snapshot(h, volatile) for h in hosts}
    rc, stats = check_run(inventory, hosts)
    failed = []
    if rc != 0:
        failed.append(f"ansible-playbook --check exited {rc}: {json.dumps(stats)}")
    for host in hosts:
        st = stats.get(host, {})
        if st.get("changed", 0) == 0:
            failed.append(f"{host}: check mode reported no change: {st}")
        after = snapshot(host, volatile)
        diff = list(difflib.unified_diff(before[host], after, "before", "after", lineterm="", n=0))
        if diff:
            failed.append(f"{host}: check mode changed the host:\n" + "\n".join(diff[:80]))
        else:
            print(
                f"{host}: check mode reported {st.get('changed')} changes and changed nothing"
                f" ({len(after)} entries compared)"
            )
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
