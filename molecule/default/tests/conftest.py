"""Verify the lab hosts from the outside.

Every check runs a command inside a lab host through `lab/labctl exec NAME -- /bin/sh -c
CMD` (nsenter into the host's namespaces, after labctl has verified the PID), so tests
use testinfra's modules (file, user, service, socket, ...) without going through the
code under test or Ansible.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import testinfra.host
import yaml
from testinfra.backend import base

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
LABCTL = PROJECT / "lab" / "labctl"
# LAB_INVENTORY points the checks at other lab hosts (same layout as inventory/hosts.yml),
# e.g. to run them against hosts converged by hand while molecule's own hosts are busy.
INVENTORY = Path(
    os.environ.get("LAB_INVENTORY", Path(__file__).parents[1] / "inventory" / "hosts.yml")
)


def lab_hosts():
    data = yaml.safe_load(INVENTORY.read_text())
    hosts = data["all"]["children"]["pod_hosts"]["hosts"]
    wanted = os.environ.get("LAB_HOSTS")
    names = sorted(hosts)
    if wanted:
        names = [n for n in names if n in wanted.split(",")]
    return names


class LabBackend(base.BaseBackend):
    """A testinfra backend that runs commands inside a lab host."""

    NAME = "lab"

    def __init__(self, name, *args, **kwargs):
        self.name = name
        super().__init__(name, *args, **kwargs)

    def get_pytest_id(self):
        return self.name

    def run(self, command, *args, **kwargs):
        command = self.get_command(command, *args)
        proc = subprocess.run(
            [str(LABCTL), "exec", self.name, "--", "/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=300,
        )
        return self.result(proc.returncode, self.encode(command), proc.stdout, proc.stderr)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other check (e.g. a reboot)")


def pytest_collection_modifyitems(items):
    """Checks marked `last` (disruptive: a reboot) run after all others, in their order."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session", params=lab_hosts())
def lab(request):
    """A testinfra Host for each lab host of the scenario."""
    return testinfra.host.Host(LabBackend(request.param))


@pytest.fixture(name="lab_host", scope="session")
def lab_host_fixture():
    """lab_host(NAME) -> a testinfra Host for that lab host (a check that needs two)."""
    return lambda name: testinfra.host.Host(LabBackend(name))


@pytest.fixture(name="project", scope="session")
def project_fixture():
    """(project directory, the scenario's inventory file)."""
    return PROJECT, INVENTORY


def run_playbook(hosts, *args, extra_vars=None, timeout=1800, inventory=None):
    """Run site.yml against lab hosts, as an admin would; return (rc, stats, output).

    hosts is a name or a list (one run for all: the hosts converge in parallel); stats maps
    each host to its recap (ok, changed, failures, ...) from the json callback; extra_vars
    (a dict) is passed as a file with -e @FILE; inventory replaces the scenario's.
    """
    hosts = [hosts] if isinstance(hosts, str) else list(hosts)
    env = dict(os.environ)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    env.setdefault("ANSIBLE_CONFIG", str(PROJECT / "ansible.cfg"))
    env["PATH"] = f"{PROJECT / 'lab' / 'bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    argv = ["ansible-playbook", "-i", str(inventory or INVENTORY), str(PROJECT / "site.yml")]
    argv += ["--limit", ",".join(hosts)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as varfile:
        if extra_vars is not None:
            yaml.safe_dump(extra_vars, varfile)
            varfile.flush()
            argv += ["-e", f"@{varfile.name}"]
        proc = subprocess.run(
            argv + list(args), capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    try:
        report = json.loads(proc.stdout)
        stats = report["stats"]
    except (ValueError, KeyError):
        report, stats = {}, {}
    return SiteRun(proc.returncode, stats, proc.stdout[-20000:] + proc.stderr[-5000:], report)


class SiteRun(tuple):
    """(rc, stats, output) of run_playbook, plus ``tasks(host)``: the names of the tasks
    that ran on a host (not skipped), in order, without their role's prefix."""

    def __new__(cls, rc, stats, out, report):
        run = super().__new__(cls, (rc, stats, out))
        run.report = report
        return run

    def tasks(self, host):
        return [
            task["task"]["name"].rpartition(" : ")[2]
            for play in self.report.get("plays", [])
            for task in play.get("tasks", [])
            if host in task["hosts"] and not task["hosts"][host].get("skipped")
        ]


def _subid_range(lab, user):
    for line in lab.file("/etc/subuid").content_string.splitlines():
        name, start, count = line.split(":")
        if name == user:
            return int(start), int(start) + int(count)
    raise AssertionError(f"no subuid range for {user}")


def _container_pids(lab, user):
    """PIDs of the processes of a hosting's containers: in the user's subuid range."""
    lo, hi = _subid_range(lab, user)
    out = lab.check_output("ps -eo pid=,uid=,comm=")
    pids = []
    for line in out.splitlines():
        pid, uid, comm = line.split(None, 2)
        if lo <= int(uid) < hi:
            pids.append((int(pid), int(uid), comm))
    return pids


@pytest.fixture(name="subid_range", scope="session")
def subid_range_fixture():
    """subid_range(lab, user) -> (first, end) of the user's subuid range."""
    return _subid_range


@pytest.fixture(name="container_pids", scope="session")
def container_pids_fixture():
    """container_pids(lab, user) -> [(pid, uid, comm)] of the hosting's container processes."""
    return _container_pids


@pytest.fixture(name="run_site", scope="session")
def run_site_fixture():
    """run_site(hosts, *args, extra_vars=None) -> (rc, stats, output): see run_playbook."""
    return run_playbook


@pytest.fixture(scope="session")
def all_labs():
    """Every lab host of the scenario, by name: for checks that act on all hosts at once."""
    return {name: testinfra.host.Host(LabBackend(name)) for name in lab_hosts()}


def wait_until(what, check, timeout=180, step=2):
    """Poll check() until it returns something true (returned) or fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture():
    """wait_until(what, check, timeout=180, step=2): see the function."""
    return wait_until


@pytest.fixture(name="labctl", scope="session")
def labctl_fixture():
    return LABCTL


# The OpenSSH client inside the lab host, against the host's own sshd on 127.0.0.1, with
# the lab's tenant keys (labctl up: /root/tenant-keys/N). No host key is trusted ahead:
# the lab host's key is not what is under test.
SSH_OPTIONS = (
    "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    " -o LogLevel=ERROR -o ConnectTimeout=10 -o IdentitiesOnly=yes"
)


_SOURCES = iter(range(10, 250))


def refused_source():
    """A loopback source address of its own (127.0.0.N) for a login meant to fail: OpenSSH
    9.8 and later (Debian 13) penalise a source address after failed logins
    (PerSourcePenalties) and then refuse every connection from it for a while, so failures
    on 127.0.0.1 would block the logins meant to work, and a refusal could come from the
    penalty instead of the check under test."""
    return f"127.0.0.{next(_SOURCES)}"


def sftp_batch(lab, user, key, lines, timeout=60, source=None):
    """Run `sftp -b -` as user with tenant key N, from 127.0.0.1 or `source`; returns
    testinfra's result (rc, stdout, stderr). `lines` are sftp commands; a command prefixed
    with `-` may fail."""
    script = "\n".join(lines) + "\n"
    bind = f" -o BindAddress={source}" if source else ""
    return lab.run(
        f"printf %s {shlex.quote(script)} | timeout {timeout} sftp {SSH_OPTIONS}{bind}"
        f" -i /root/tenant-keys/{key} -b - {user}@127.0.0.1"
    )


def sftp_refused(lab, user, key):
    """Whether a login as user with key N is refused by authentication (from a source
    address of its own, see refused_source)."""
    res = sftp_batch(lab, user, key, ["ls /"], source=refused_source())
    if res.rc == 0:
        return False
    assert "Permission denied" in res.stderr, res.stderr
    return True


def ssh_command(lab, user, key, options="", command="", timeout=30):
    """The ssh client with tenant key N, extra options and a remote command (shell-quoted
    strings), its input from /dev/null."""
    return lab.run(
        f"timeout {timeout} ssh {SSH_OPTIONS} -i /root/tenant-keys/{key} {options}"
        f" {user}@127.0.0.1 {command} </dev/null"
    )


@pytest.fixture(name="sftp_refused", scope="session")
def sftp_refused_fixture():
    """sftp_refused(lab, user, key) -> True when authentication refuses the login."""
    return sftp_refused


@pytest.fixture(name="refused_source", scope="session")
def refused_source_fixture():
    """refused_source() -> a fresh 127.0.0.N for a login meant to fail."""
    return refused_source


@pytest.fixture(name="sftp", scope="session")
def sftp_fixture():
    """sftp(lab, user, key, lines) -> result: see sftp_batch."""
    return sftp_batch


@pytest.fixture(name="ssh", scope="session")
def ssh_fixture():
    """ssh(lab, user, key, options="", command="") -> result: see ssh_command."""
    return ssh_command
