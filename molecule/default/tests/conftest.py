"""Verify the lab hosts from the outside.

Every check runs a command inside a lab host through `lab/labctl exec NAME -- /bin/sh -c
CMD` (nsenter into the host's namespaces, after labctl has verified the PID), so tests
use testinfra's modules (file, user, service, socket, ...) without going through the
code under test or Ansible.
"""

import os
import subprocess
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


@pytest.fixture(scope="session", params=lab_hosts())
def lab(request):
    """A testinfra Host for each lab host of the scenario."""
    return testinfra.host.Host(LabBackend(request.param))
