# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bringing up new hostings together: their accounts, the group share of data/, linger,
their user managers (which start the pods and the tenant's timers) and the restart and
key triggers of the system manager.

A new hosting needed about a dozen module calls one after another (group, SFTP group,
user, ACL, linger, manager, reload, pod, timers, two path units), 0.3-0.7 s each
through any connection, and every pod started only after the previous one. Here each
kind of work is one command for all of them where the tool takes many (``loginctl
enable-linger``, ``systemctl start`` of many managers, ``systemctl enable``), and the
pods of up to ``parallel`` managers start at the same time.

Only hostings whose files are laid out and whose pod validated come here (the filter
``hosting_bringup`` chooses them); the role converges any other hosting one at a time.
No Ansible import: the module ``webhosting.pods.bringup`` is a thin shell over this file
and the unit tests call it with their own ``run``.
"""

import grp
import os
import pwd
import stat
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError
from ansible_collections.webhosting.pods.plugins.module_utils.command import run as run_command
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import read_acl

NOLOGIN = "/usr/sbin/nologin"
# A manager starts its pod (default.target wants it) before it reports ready.
MANAGER_TIMEOUT = 600


class Bringup:
    """One bring-up; ``run(argv, timeout)`` returns the finished process (CommandError when
    it cannot run). ``paths`` names the tools."""

    def __init__(self, hostings, parallel=4, run=run_command, paths=None, timeout=MANAGER_TIMEOUT):
        self.hostings = {h["name"]: h for h in hostings}
        self.parallel = max(1, int(parallel))
        self.run = run
        self.tool = {
            "groupadd": "groupadd",
            "useradd": "useradd",
            "setfacl": "setfacl",
            "loginctl": "loginctl",
            "systemctl": "systemctl",
            "journalctl": "journalctl",
            **(paths or {}),
        }
        self.timeout = timeout
        self.actions = {name: [] for name in self.hostings}
        self.failures = {}

    # --- helpers --------------------------------------------------------------------------
    def _cmd(self, argv, timeout=120):
        """(ok, text) of a command: its stderr (or stdout) when it failed."""
        try:
            proc = self.run(argv, timeout)
        except CommandError as exc:
            return False, str(exc)
        if proc.returncode != 0:
            return False, (proc.stderr or proc.stdout or "").strip() or f"exit {proc.returncode}"
        return True, proc.stdout

    def _fail(self, name, step, text):
        self.failures.setdefault(name, f"{step}: {text}")

    def _alive(self):
        return [h for name, h in self.hostings.items() if name not in self.failures]

    # --- the steps ------------------------------------------------------------------------
    def accounts(self):
        """The group, the SFTP group and the locked, shell-less system user (``-r``: no
        subordinate ids from useradd; the subid module has allocated them)."""
        for h in self._alive():
            name = h["name"]
            try:
                pwd.getpwnam(name)
                continue  # the filter sends an existing user only when it is as wanted
            except KeyError:
                pass
            steps = []
            if not _group_exists(name):
                steps.append(("group", [self.tool["groupadd"], "--gid", str(h["gid"]), "--", name]))
            if h.get("sftp_group") and not _group_exists(h["sftp_group"]):
                steps.append(
                    ("SFTP group", [self.tool["groupadd"], "--system", "--", h["sftp_group"]])
                )
            user = [
                self.tool["useradd"],
                "--system",
                "--uid",
                str(h["uid"]),
                "--gid",
                name,
                "--comment",
                h["gecos"],
                "--home-dir",
                h["home"],
                "--no-create-home",
                "--shell",
                NOLOGIN,
                "--password",
                "!",
            ]
            if h.get("sftp_group"):
                user += ["--groups", h["sftp_group"]]
            steps.append(("user", user + ["--", name]))
            for what, argv in steps:
                ok, text = self._cmd(argv)
                if not ok:
                    self._fail(name, f"create the {what}", text)
                    break
                self.actions[name].append(f"{what} created")

    def share(self):
        """data/'s default ACL entry for the hosting user. data/ is a direct child of the
        root-owned hosting root; a link there is refused, never followed."""
        for h in self._alive():
            path = h["data_dir"]
            try:
                info = os.lstat(path)
                if not stat.S_ISDIR(info.st_mode):
                    raise OSError(f"{path} is not a directory")
                if read_acl(path, str(h["uid"]), True) == "rwx":
                    continue
            except OSError as exc:
                self._fail(h["name"], "share data/", str(exc))
                continue
            argv = [self.tool["setfacl"], "--physical", "-d", "-m", f"u:{h['uid']}:rwx", "--", path]
            ok, text = self._cmd(argv)
            if ok:
                self.actions[h["name"]].append("data/ default ACL")
            else:
                self._fail(h["name"], "share data/", text)

    def managers(self):
        """Linger and the user managers, ``parallel`` at a time: each manager starts its
        pod, the pod's forwarders and the tenant's timers before it reports ready. Then
        each pod and timer is started once more, which is a no-op for a unit that runs and
        gives the error of one that does not."""
        alive = self._alive()
        for first in range(0, len(alive), self.parallel):
            wave = [
                h for h in alive[first : first + self.parallel] if h["name"] not in self.failures
            ]
            if not wave:
                continue
            linger = [h["name"] for h in wave if not os.path.lexists(h["linger_file"])]
            if linger:
                ok, text = self._cmd([self.tool["loginctl"], "enable-linger", "--"] + linger)
                if not ok:
                    for name in linger:
                        self._fail(name, "linger", text)
                    wave = [h for h in wave if h["name"] not in linger]
                for name in linger:
                    if name not in self.failures:
                        self.actions[name].append("linger")
            units = [f"user@{h['uid']}.service" for h in wave]
            if units:
                # a manager that fails is found by its own start below
                self._cmd([self.tool["systemctl"], "start", "--"] + units, self.timeout)
            with ThreadPoolExecutor(max_workers=len(wave) or 1) as pool:
                list(pool.map(self._start_units, wave))

    def _start_units(self, h):
        name = h["name"]
        ok, text = self._cmd([self.tool["systemctl"], "start", f"user@{h['uid']}.service"])
        if not ok:
            self._fail(name, "start the user manager", text)
            return
        user = [self.tool["systemctl"], "--user", f"--machine={name}@"]
        ok, text = self._cmd(user + ["start", "--", h["unit"]] + h["units"], self.timeout)
        if not ok:
            self._fail(name, "start the pod", f"{text}; journal: {self._journal(h)}")
            return
        self.actions[name].append("pod started")

    def _journal(self, h):
        ok, text = self._cmd(
            [
                self.tool["journalctl"],
                "--no-pager",
                "--lines=30",
                "--output=cat",
                f"_UID={h['uid']}",
            ]
        )
        return text.strip().splitlines()[-30:] if ok else text

    def triggers(self):
        """The restart trigger (and key trigger) path units, enabled and started."""
        alive = self._alive()
        units = [u for h in alive for u in h["system_units"]]
        if not units:
            return
        ok, text = self._cmd([self.tool["systemctl"], "enable", "--now", "--"] + units)
        if ok:
            for h in alive:
                self.actions[h["name"]].append("triggers watching")
            return
        # one at a time, to name the hosting whose unit fails
        for h in alive:
            ok, text = self._cmd(
                [self.tool["systemctl"], "enable", "--now", "--"] + h["system_units"]
            )
            if ok:
                self.actions[h["name"]].append("triggers watching")
            else:
                self._fail(h["name"], "watch the triggers", text)

    def __call__(self):
        self.accounts()
        self.share()
        self.managers()
        self.triggers()
        return {
            name: {
                "changed": bool(self.actions[name]),
                "actions": self.actions[name],
                **({"failed": True, "msg": self.failures[name]} if name in self.failures else {}),
            }
            for name in self.hostings
        }


def _group_exists(name):
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
