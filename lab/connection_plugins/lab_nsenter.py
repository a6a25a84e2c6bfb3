# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible connection to a lab host (lab/labctl), for the lab and the tests only.

Why not community.docker.nsenter alone:
- its PID defaults to 1, which is the machine running the tests: this plugin has no
  default PID; it asks `labctl pid NAME` once per connection, which verifies that the PID
  is the named lab host's own systemd, and refuses anything else (fail closed);
- it has no pipelining: every module call costs six nsenter round trips (home directory,
  temporary directory, copy, chmod, run, clean up). Its exec_command already feeds stdin
  to the process, so pipelining only has to be declared: one round trip per module.
  Production pod hosts are reached over SSH with pipelining on; this makes the lab's
  timings (benchmarks/) comparable to that.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lab_nsenter
short_description: Run tasks inside a webhosting.pods lab host, verified by labctl
description:
  - Enters the namespaces of a lab host booted by C(lab/labctl up NAME) with C(nsenter).
  - The PID is asked from C(labctl pid NAME) when the connection opens; there is no default,
    so a host that is not up fails the task instead of reaching PID 1.
  - Supports pipelining (module source on stdin).
options:
  lab_host:
    description: Name of the lab host. Defaults to C(ansible_host), else the inventory host name.
    type: str
    vars:
      - name: ansible_lab_host
  labctl:
    description: Path of labctl. Defaults to labctl next to this plugin's directory.
    type: str
    vars:
      - name: ansible_labctl
    env:
      - name: LABCTL
  pipelining:
    description: Send modules on stdin.
    type: bool
    default: true
    vars:
      - name: ansible_pipelining
    env:
      - name: ANSIBLE_PIPELINING
"""

import os
import subprocess

from ansible.errors import AnsibleConnectionFailure
from ansible.utils.display import Display
from ansible_collections.community.docker.plugins.connection.nsenter import (
    Connection as NsenterConnection,
)

display = Display()

LABCTL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "labctl")


class Connection(NsenterConnection):
    """community.docker.nsenter with a verified PID and pipelining."""

    transport = "lab_nsenter"
    has_pipelining = True

    def _connect(self):
        if self._connected:
            return self
        name = self.get_option("lab_host") or self._play_context.remote_addr
        labctl = self.get_option("labctl") or LABCTL
        try:
            proc = subprocess.run(
                [labctl, "pid", name],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnsibleConnectionFailure(
                f"lab host {name}: cannot run {labctl} pid: {exc}"
            ) from exc
        pid = proc.stdout.strip()
        if proc.returncode != 0 or not pid.isdigit() or int(pid) <= 1:
            reason = proc.stderr.strip() or f"labctl printed {pid!r}"
            raise AnsibleConnectionFailure(
                f"lab host {name} is not up ({reason}); start it with: lab/labctl up {name}"
            )
        self._nsenter_pid = int(pid)
        self._play_context.remote_user = "root"
        display.vvv(f"LAB HOST {name}: nsenter into PID {pid}", host=name)
        self._connected = True
        return self
