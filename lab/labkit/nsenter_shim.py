# SPDX-License-Identifier: GPL-3.0-or-later
"""nsenter shim (lab/bin/nsenter -> ../labctl): refuses PID 1, enters the host's cgroups."""

import os
import sys

from .config import INNER_PATH
from .hosts import enter_host_cgroup, known_hosts, load_state, verify_host_pid
from .util import LabError


def nsenter_target(args):
    """The --target/-t PID of an nsenter command line, or None."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a in ("-t", "--target") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--target="):
            return a.split("=", 1)[1]
        if a.startswith("-t") and not a.startswith("--") and len(a) > 2:
            return a[2:]
        i += 1
    return None


def nsenter_shim(args):
    """Put first in PATH for Ansible's community.docker.nsenter connection.

    Refuses a missing target or PID 1 (the plugin's default is this machine), and moves
    the command into the lab host's cgroup tree when the target is a lab host's
    verified systemd, so logind treats it like a process of the host.  Any other
    target goes to the real nsenter unchanged.
    """
    real = None
    for d in os.environ.get("PATH", INNER_PATH).split(":") + INNER_PATH.split(":"):
        cand = os.path.join(d or ".", "nsenter")
        # Skip every labctl shim, not only this one: with two checkouts' lab/bin in PATH
        # the two shims would otherwise exec each other forever.
        if os.access(cand, os.X_OK) and os.path.basename(os.path.realpath(cand)) != "labctl":
            real = cand
            break
    if not real:
        print("nsenter (labctl shim): the real nsenter is not in PATH", file=sys.stderr)
        return 127
    target = nsenter_target(args)
    if target is None:  # namespace files given explicitly: nothing to check
        os.execv(real, ["nsenter", *args])
    if not target.isdigit() or int(target) <= 1:
        print(
            f"nsenter (labctl shim): refusing target {target!r}: set ansible_nsenter_pid "
            "to `labctl pid NAME` (PID 1 is this machine)",
            file=sys.stderr,
        )
        return 1
    pid = int(target)
    if os.geteuid() == 0:
        for name in known_hosts():
            st = load_state(name)
            if st and (st.get("systemd") or {}).get("pid") == pid:
                try:
                    verify_host_pid(name, st)
                except LabError as exc:
                    print(f"nsenter (labctl shim): {exc}", file=sys.stderr)
                    return 1
                enter_host_cgroup(pid)
                break
    os.execv(real, ["nsenter", *args])
