"""Fakes for the labkit tests (tests/unit/lab): a lab in a temporary directory.

FakeLab holds a lab's state and cache directories and a fake /proc that the tests fill
with processes; the ``lab`` fixture (tests/unit/lab/conftest.py) points labkit at it.
"""

import json

from labkit import config


def stat_line(pid, comm, ppid, start, state="S"):
    """A /proc/PID/stat line: starttime is the 22nd field."""
    rest = [state, str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 5
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


class FakeLab:
    def __init__(self, root):
        self.root = root
        self.state = root / "state"
        self.cache = root / "cache"
        self.proc = root / "proc"
        for d in (self.state, self.cache, self.proc):
            d.mkdir()

    def add_proc(self, pid, comm, ppid=1, start=1000, state="S", environ=(), root=None):
        """A process in the fake /proc; environ: "NAME=value" strings; root: a directory."""
        d = self.proc / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_text(stat_line(pid, comm, ppid, start, state))
        (d / "environ").write_bytes(b"".join(e.encode() + b"\0" for e in environ))
        if root is not None:
            link = d / "root"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(root)
        return d

    def host_dir(self, name):
        return self.state / "hosts" / name

    def marker(self, name):
        return f"{config.MARKER_ENV}={self.host_dir(name)}"

    def write_state(self, name, st):
        hd = self.host_dir(name)
        hd.mkdir(parents=True, exist_ok=True)
        (hd / "state.json").write_text(json.dumps(st))

    def running_host(self, name="demo", nspawn=4242, systemd=4243):
        """A lab host as `up` leaves it: state.json, rootfs, nspawn and its systemd child."""
        rootfs = self.host_dir(name) / "rootfs"
        rootfs.mkdir(parents=True)
        st = {
            "name": name,
            "release": "bookworm",
            "phase": "ready",
            "nspawn": {"pid": nspawn, "comm": "systemd-nspawn", "start": 500},
            "systemd": {"pid": systemd, "comm": "systemd", "start": 501},
        }
        self.write_state(name, st)
        self.add_proc(nspawn, "systemd-nspawn", start=500, environ=["PATH=/bin", self.marker(name)])
        self.add_proc(systemd, "systemd", ppid=nspawn, start=501, root=rootfs)
        return st
