#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: bringup
short_description: Bring up new hostings together - accounts, linger, user managers, pods,
  triggers
version_added: 0.3.0
description:
- Creates the group, the SFTP group and the locked system user of each new hosting, gives
  the hosting user the default ACL entry on its C(data/), enables linger, starts the user
  managers (each starts its pod, the socket forwarders and the tenant's timers, which the
  hosting's unit links want) and enables the restart and key trigger path units of the system
  manager.
- One command for all hostings where the tool takes many (C(loginctl enable-linger), C(systemctl
  start) and C(systemctl enable --now)); the pods of O(parallel) managers start at the same
  time. A new hosting otherwise costs about a dozen module calls one after another
  (M(ansible.builtin.group), M(ansible.builtin.user), M(ansible.posix.acl),
  M(ansible.builtin.systemd_service) each take one object per call).
- A hosting whose step fails is reported under its name with the command's message (for a
  pod that does not start, the last 30 lines of the hosting user's journal); the others go
  on.
- Meant for hostings whose files are laid out and whose pod validated, with no running user
  manager; the hosting role's filter C(hosting_bringup) chooses them. An existing user is
  left as it is.
options:
  hostings:
    description: The hostings to bring up.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The hosting (its user and group name).
        type: str
        required: true
      uid:
        description: The user's uid.
        type: int
        required: true
      gid:
        description: The group's gid.
        type: int
        required: true
      gecos:
        description: The user's comment field.
        type: str
        required: true
      home:
        description: The user's home (not created here).
        type: path
        required: true
      sftp_group:
        description: Supplementary group for SFTP (empty for none).
        type: str
        default: ''
      data_dir:
        description: The hosting's data/ (its default ACL).
        type: path
        required: true
      linger_file:
        description: logind's linger file of the user.
        type: path
        required: true
      unit:
        description: The pod unit of the user's manager.
        type: str
        required: true
      units:
        description: Further units of the user's manager that must run (the tenant's timers).
        type: list
        elements: str
        default: []
      system_units:
        description: Path units of the system manager to enable and start.
        type: list
        elements: str
        default: []
  parallel:
    description: User managers (and so pods) started at the same time.
    type: int
    default: 4
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: full
author:
- webhosting.pods developers
"""

EXAMPLES = r"""
- name: Bring up two new hostings
  webhosting.pods.bringup:
    hostings:
      - name: shop
        uid: 10001
        gid: 10001
        gecos: webhosting shop
        home: /var/lib/webhosting-pods/users/shop
        sftp_group: webhosting-sftp
        data_dir: /srv/hostings/shop/data
        linger_file: /var/lib/systemd/linger/shop
        unit: webhosting-pod.service
        units: [webhosting-pod-update.timer]
        system_units: [webhosting-trigger@shop.path, webhosting-keys@shop.path]
    parallel: 4
"""

RETURN = r"""
hostings:
  description:
    - Per hosting, C(changed), C(actions) (what was done) and, when a step failed,
      C(failed) and C(msg).
  returned: always
  type: dict
  sample:
    shop: {"changed": true, "actions": ["group created", "user created", "linger", "pod started"]}
failures:
  description: Per hosting that failed, its message.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.webhosting.pods.plugins.module_utils.bringup import Bringup

TOOLS = ("groupadd", "useradd", "setfacl", "loginctl", "systemctl", "journalctl")


def main():
    module = AnsibleModule(
        argument_spec={
            "hostings": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "uid": {"type": "int", "required": True},
                    "gid": {"type": "int", "required": True},
                    "gecos": {"type": "str", "required": True},
                    "home": {"type": "path", "required": True},
                    "sftp_group": {"type": "str", "default": ""},
                    "data_dir": {"type": "path", "required": True},
                    "linger_file": {"type": "path", "required": True},
                    "unit": {"type": "str", "required": True},
                    "units": {"type": "list", "elements": "str", "default": []},
                    "system_units": {"type": "list", "elements": "str", "default": []},
                },
            },
            "parallel": {"type": "int", "default": 4},
        },
        supports_check_mode=False,
    )
    p = module.params
    names = [h["name"] for h in p["hostings"]]
    if len(set(names)) != len(names):
        module.fail_json(msg="hostings: duplicate names")
    if p["parallel"] < 1:
        module.fail_json(msg="parallel: must be 1 or more")
    paths = {tool: module.get_bin_path(tool, required=bool(names)) for tool in TOOLS}
    results = Bringup(p["hostings"], p["parallel"], paths=paths)()
    failures = {name: r["msg"] for name, r in results.items() if r.get("failed")}
    module.exit_json(
        changed=any(r["changed"] for r in results.values()),
        hostings=results,
        failures=failures,
    )


if __name__ == "__main__":
    main()
