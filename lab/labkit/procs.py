# SPDX-License-Identifier: GPL-3.0-or-later
"""Processes: /proc records, markers in the environment, starting and stopping them."""

import contextlib
import os
import signal
import subprocess
import time

from .config import MARKER_ENV
from .util import LabError, tail, warn

# Where process information is read: /proc, or a fake tree in the unit tests.
PROC = "/proc"


def proc_path(pid, name):
    """PROC/PID/NAME, e.g. /proc/42/root."""
    return f"{PROC}/{pid}/{name}"


def proc_stat(pid):
    """(comm, state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open(proc_path(int(pid), "stat"), "rb") as fh:
            data = fh.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    comm = data[lpar + 1 : rpar]
    rest = data[rpar + 2 :].split()
    return comm, rest[0], int(rest[1]), int(rest[19])


def proc_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def proc_record(pid):
    st = proc_stat(pid)
    if st is None:
        return None
    return {"pid": int(pid), "comm": st[0], "start": st[3]}


def proc_matches(rec):
    """True if the process recorded in rec is still that process and alive."""
    if not rec or not rec.get("pid"):
        return False
    st = proc_stat(rec["pid"])
    return (
        st is not None
        and st[1] not in ("Z", "X")
        and st[3] == rec.get("start")
        and st[0] == rec.get("comm")
    )


def proc_environ_has(pid, marker):
    try:
        with open(proc_path(pid, "environ"), "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


def all_pids():
    for entry in os.listdir(PROC):
        if entry.isdigit():
            yield int(entry)


def children(pid):
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st[2] == pid:
            out.append(p)
    return out


def marked_pids(hostdir, env_name=MARKER_ENV):
    """PIDs we started for hostdir: they carry MARKER_ENV=hostdir in their environment."""
    marker = f"{env_name}={hostdir}".encode()
    me = os.getpid()
    return [p for p in all_pids() if p != me and proc_alive(p) and proc_environ_has(p, marker)]


def start_logged(argv, log, env, comm, what, timeout, header_argv=None, **popen):
    """Start argv in its own session, its output appended to the file log; wait until it runs.

    It runs once a process of its PID is named comm (argv[0] may be a wrapper that execs
    it).  Raises LabError with the log's tail if it exits first or takes over timeout s.
    header_argv: the command the log's header line names (default argv).  popen: more
    subprocess.Popen arguments (cwd, preexec_fn).
    """
    with open(log, "ab") as fh:
        shown = " ".join(header_argv or argv)
        fh.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {shown}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            **popen,
        )
    deadline = time.monotonic() + timeout
    while True:
        stat = proc_stat(proc.pid)
        if stat and stat[0] == comm:
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"{what} did not start; log {log}:\n" + tail(log))
        time.sleep(0.02)


def reap(pid):
    """Collect pid if it is our own child (avoids zombies in one labctl run)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while True:
        for p in pids:
            reap(p)
        alive = [p for p in pids if proc_alive(p)]
        # a child that died after the reap above is a zombie now: reap it before returning
        for p in pids:
            if p not in alive:
                reap(p)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def stop_pids(recs, what, term_timeout=10):
    """SIGTERM then SIGKILL the processes in recs (verified records only)."""
    pids = [r["pid"] for r in recs if proc_matches(r)]
    if not pids:
        return
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    alive = wait_gone(pids, term_timeout)
    for p in alive:
        rec = next(r for r in recs if r["pid"] == p)
        if proc_matches(rec):
            warn(f"{what}: PID {p} ignored SIGTERM, sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    alive = wait_gone(alive, 10)
    if alive:
        raise LabError(f"{what}: PIDs {alive} do not die")


def stat_key(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)
