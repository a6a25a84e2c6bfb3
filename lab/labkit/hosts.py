# SPDX-License-Identifier: GPL-3.0-or-later
"""Host state (state.json), the verified systemd PID of a lab host, running commands in it."""

import json
import os

from . import config
from .config import MARKER_ENV, NAME_RE
from .procs import all_pids, proc_environ_has, proc_matches, proc_path, proc_stat, stat_key
from .util import LabError, flock, read_json, read_text, run, warn, write_file


def check_name(name):
    if not NAME_RE.fullmatch(name or ""):
        raise LabError(
            f"invalid lab host name {name!r}: use a-z, 0-9 and '-', at most 32 characters"
        )


def hosts_root():
    return os.path.join(config.STATE_DIR, "hosts")


def host_dir(name):
    return os.path.join(hosts_root(), name)


def host_rootfs(name):
    return os.path.join(host_dir(name), "rootfs")


def host_lock(name):
    return flock(os.path.join(config.STATE_DIR, "locks", f"{name}.lock"), what=f"lab host {name}")


def load_state(name):
    return read_json(os.path.join(host_dir(name), "state.json"))


def save_state(name, st):
    write_file(os.path.join(host_dir(name), "state.json"), json.dumps(st, indent=2) + "\n")


def known_hosts():
    names = set()
    if os.path.isdir(hosts_root()):
        names.update(e for e in os.listdir(hosts_root()) if NAME_RE.fullmatch(e))
    # hosts whose directory is gone but whose processes are not
    prefix = f"{MARKER_ENV}={hosts_root()}/".encode()
    me = os.getpid()
    for p in all_pids():
        if p == me:
            continue
        try:
            with open(proc_path(p, "environ"), "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(prefix):
                n = item[len(prefix) :].decode(errors="replace")
                if NAME_RE.fullmatch(n):
                    names.add(n)
    return sorted(names)


def verify_host_pid(name, st=None):
    """The lab host's systemd PID, verified; raises LabError otherwise (fail closed)."""
    check_name(name)
    st = st if st is not None else load_state(name)
    if not st:
        raise LabError(f"lab host {name} is not up (no state in {host_dir(name)})")
    nspawn, systemd = st.get("nspawn"), st.get("systemd")
    if not nspawn or not systemd:
        raise LabError(f"lab host {name} is not up (boot not recorded)")
    if not proc_matches(nspawn):
        raise LabError(
            f"lab host {name} is not up (its systemd-nspawn, PID {nspawn.get('pid')}, is gone)"
        )
    if not proc_environ_has(nspawn["pid"], f"{MARKER_ENV}={host_dir(name)}".encode()):
        raise LabError(
            f"lab host {name}: PID {nspawn['pid']} is not the systemd-nspawn labctl started"
        )
    pid = systemd.get("pid")
    if not isinstance(pid, int) or pid <= 1 or pid == os.getpid():
        raise LabError(f"lab host {name}: refusing PID {pid!r}")
    if not proc_matches(systemd):
        raise LabError(f"lab host {name} is not up (its systemd, PID {pid}, is gone)")
    stat = proc_stat(pid)
    if stat[0] != "systemd":
        raise LabError(f"lab host {name}: PID {pid} is {stat[0]!r}, not systemd")
    if stat[2] != nspawn["pid"]:
        raise LabError(
            f"lab host {name}: PID {pid} is not a child of its systemd-nspawn ({nspawn['pid']})"
        )
    try:
        root = stat_key(proc_path(pid, "root"))
        mine = stat_key(host_rootfs(name))
    except OSError as exc:
        raise LabError(f"lab host {name}: cannot check the root of PID {pid}: {exc}") from exc
    if root != mine:
        raise LabError(f"lab host {name}: the root of PID {pid} is not {host_rootfs(name)}")
    if root == stat_key("/"):
        raise LabError(f"lab host {name}: PID {pid} runs in this machine's root: refusing")
    return pid


def host_cgroup_dirs(spid):
    """Machine paths of a cgroup inside lab host spid's own tree (one per hierarchy we use).

    A process that nsenter puts into the host keeps this machine's cgroup, which the host
    sees as "/../../..": systemd 257's logind then refuses it (`loginctl enable-linger`:
    "Protocol driver not attached").  Commands labctl runs are first moved into
    <host cgroup root>/labctl-exec, so they look like any process of the host.
    """
    dirs = []
    for line in read_text(proc_path(int(spid), "cgroup"), "").splitlines():
        hid, ctrl, path = line.split(":", 2)
        if ctrl == "name=systemd":
            base = "/sys/fs/cgroup/systemd"
        elif hid == "0" and ctrl == "":
            base = "/sys/fs/cgroup/unified"
        else:
            continue
        if path.endswith("/init.scope"):
            path = path[: -len("/init.scope")]
        if not path.startswith(f"/{config.CGROUP_PARENT}/"):
            continue  # not the tree labctl made for the host: leave cgroups alone
        dirs.append(os.path.join(base + path, "labctl-exec"))
    return dirs


def join_cgroups(dirs):
    """Move this process into each cgroup directory (made if missing).

    Returns the (directory, OSError) pairs that failed; callers decide whether that is
    fatal.  Safe in a preexec_fn: no output, no locks.
    """
    failed = []
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            failed.append((d, exc))
    return failed


def enter_host_cgroup(spid):
    """Move this process into lab host spid's cgroup tree (best effort)."""
    for d, exc in join_cgroups(host_cgroup_dirs(spid)):
        warn(f"cannot move into cgroup {d}: {exc}")


def nsenter_all(pid, argv):
    return ["nsenter", "-t", str(int(pid)), "-a", "--", *argv]


def nsenter_net(pid, argv):
    return ["nsenter", "-t", str(int(pid)), "-n", "--", *argv]


def host_run(pid, argv, **kw):
    """Run argv inside the lab host (all namespaces), clean environment."""
    assert int(pid) > 1
    dirs = host_cgroup_dirs(pid)
    kw.setdefault("timeout", 600)
    # In the child, before exec; best effort like enter_host_cgroup.
    return run(nsenter_all(pid, argv), preexec_fn=lambda: join_cgroups(dirs), **kw)


def host_write(pid, path, data, mode="0644"):
    """Write a file inside the lab host (paths resolve in the host's own mount namespace)."""
    host_run(pid, ["install", "-d", "-m", "0755", os.path.dirname(path)], capture=True)
    host_run(
        pid, ["tee", "--", path], input=data, capture=True, what=f"writing {path} in the lab host"
    )
    host_run(pid, ["chmod", mode, "--", path], capture=True)


def system_state(pid, timeout=15):
    try:
        rc, out, _ = run(
            nsenter_all(pid, ["systemctl", "is-system-running"]),
            check=False,
            capture=True,
            timeout=timeout,
        )
    except LabError as exc:
        return f"unknown ({exc})"
    return out.strip() or f"unknown (exit {rc})"


def listening(pid):
    """Set of (proto, port) listening in the lab host's network namespace."""
    return parse_listening(run(nsenter_net(pid, ["ss", "-Hlntu"]), capture=True, timeout=10))


def parse_listening(out):
    """Set of (proto, port) in the output of `ss -Hlntu`."""
    ports = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5:
            proto = f[0]
            port = f[4].rsplit(":", 1)[-1]
            if port.isdigit():
                ports.add((proto, int(port)))
    return ports
