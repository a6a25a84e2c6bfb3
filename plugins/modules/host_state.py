#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: host_state
short_description: Read the state of every hosting of a pod host in one call
version_added: 0.2.0
description:
  - Reads, and never changes, what the roles need to know to decide which hostings need
    work - units in the system manager and in each hosting user's manager, POSIX ACL
    entries, certificates and the existence of paths - for all hostings at once.
  - A no-op run of a pod host with many hostings then costs one call here instead of
    several module calls per hosting (M(ansible.builtin.systemd_service) cannot reach a
    user manager of a user without a login shell, M(ansible.posix.acl) and
    M(community.crypto.x509_certificate_info) take one path per call).
  - Units are read with C(systemctl show), one process for the system manager and one per
    running user manager. A user manager that does not run is not started.
  - A user manager is asked by C(systemctl --user) run as its user with C(setpriv) (uid,
    gid, no other groups, no new privileges) on the user's own bus; without C(setpriv),
    through C(systemctl --user --machine=NAME@), which opens a PAM session each time.
options:
  system_units:
    description: Units of the system manager to read.
    type: list
    elements: str
    default: []
  users:
    description:
      - Hosting users whose manager and units to read. The manager C(user@UID.service) is
        read with O(system_units); the units only when it is active.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name (for C(systemctl --user --machine=NAME@) without C(setpriv)).
        type: str
        required: true
      uid:
        description: Numeric uid.
        type: int
        required: true
      units:
        description: Units of the user's manager to read.
        type: list
        elements: str
        default: []
  acls:
    description: Named-user entries of POSIX ACLs to read (the last path component is not followed).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file or directory.
        type: path
        required: true
      user:
        description: The user name of the entry.
        type: str
        required: true
      default:
        description: Read the default ACL of a directory instead of its access ACL.
        type: bool
        default: false
  certificates:
    description: PEM certificate files whose DNS names and expiry to read.
    type: list
    elements: path
    default: []
  exists:
    description: Paths whose existence to report (not followed when a symlink).
    type: list
    elements: path
    default: []
  getent:
    description:
      - Name service databases to read with C(getent), returned as the facts
        C(getent_<database>) in the format of M(ansible.builtin.getent), so that one call
        replaces one M(ansible.builtin.getent) task per database.
    type: list
    elements: dict
    default: []
    suboptions:
      database:
        description: The database, for example V(passwd), V(group) or V(shadow).
        type: str
        required: true
      keys:
        description:
          - Only these entries (names missing from the database are left out), for example
            the hostings' users of V(shadow), so that no other password hash is read.
          - Empty for every entry.
        type: list
        elements: str
        default: []
  orphans:
    description:
      - Find the hostings this collection made that the inventory no longer names. Every
        entry of O(orphans.dirs) (the hosting roots, their configuration, their state) not
        named in O(orphans.known) is returned in RV(orphans), with a warning each.
      - Only reads; nothing is ever removed.
    type: dict
    suboptions:
      known:
        description: The names of every hosting of the inventory (present or absent).
        type: list
        elements: str
        required: true
      dirs:
        description: Directories holding one entry per hosting, named after it.
        type: list
        elements: path
        required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - python3-cryptography on the managed host for O(certificates).
author:
  - webhosting.pods developers
"""

EXAMPLES = r"""
- name: Read the state of two hostings
  webhosting.pods.host_state:
    system_units: [webhosting-trigger@shop.path]
    users:
      - {name: shop, uid: 10001, units: [webhosting-pod.service, webhosting-pod-update.timer]}
    acls:
      - {path: /srv/hostings/shop, user: www-data}
      - {path: /srv/hostings/shop/www, user: www-data, default: true}
    certificates: [/etc/letsencrypt/live/shop/cert.pem]
    exists: [/var/lib/systemd/linger/shop]
  register: __state
"""

RETURN = r"""
system:
  description: Per unit (O(system_units) and each user's C(user@UID.service)), its states.
  returned: always
  type: dict
  sample:
    webhosting-trigger@shop.path: {"load": "loaded", "active": "active", "file": "enabled"}
users:
  description:
    - Per user, C(manager) (the ActiveState of its manager) and C(units), each unit's
      ActiveState (empty when the manager does not run or cannot be reached).
  returned: always
  type: dict
  sample: {"shop": {"manager": "active", "units": {"webhosting-pod.service": "active"}}}
acls:
  description:
    - Per path (with C(:default) appended for a default ACL) and user, the permissions
      of the entry as C(rwx) letters with C(-) for a missing one, or C(null) when there
      is no entry (or no such path).
  returned: always
  type: dict
  sample: {"/srv/hostings/shop": {"www-data": "--x"}, "/srv/hostings/shop/www:default": {}}
certificates:
  description:
    - Per certificate path, C(exists), C(dns_names) (sorted) and C(not_after) (ISO 8601,
      UTC); C(error) when the file is no PEM certificate.
  returned: always
  type: dict
  sample:
    /etc/letsencrypt/live/shop/cert.pem:
      exists: true
      dns_names: [shop.example, www.shop.example]
      not_after: "2027-02-20T10:00:00+00:00"
exists:
  description: Per path of O(exists), whether it exists.
  returned: always
  type: dict
  sample: {"/var/lib/systemd/linger/shop": true}
orphans:
  description: Per hosting found in O(orphans.dirs) but not in O(orphans.known), its paths there.
  returned: always
  type: dict
  sample: {"blog": ["/srv/hostings/blog", "/etc/webhosting-pods/hostings/blog"]}
ansible_facts:
  description: C(getent_<database>) per database of O(getent), each entry's fields by its key.
  returned: when O(getent) is given
  type: dict
  sample:
    getent_passwd: {"shop": ["x", "10001", "10001", "", "/home/shop", "/usr/sbin/nologin"]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import (
    HostStateError,
    exists,
    orphan_warning,
    orphans,
    read_acls,
    read_certificates,
    read_getent,
    read_units,
)


def _list_of(options):
    """The spec of a list of dicts with these options, empty by default."""
    return {"type": "list", "elements": "dict", "default": [], "options": options}


def main():
    module = AnsibleModule(
        argument_spec={
            "system_units": {"type": "list", "elements": "str", "default": []},
            "users": _list_of(
                {
                    "name": {"type": "str", "required": True},
                    "uid": {"type": "int", "required": True},
                    "units": {"type": "list", "elements": "str", "default": []},
                }
            ),
            "acls": _list_of(
                {
                    "path": {"type": "path", "required": True},
                    "user": {"type": "str", "required": True},
                    "default": {"type": "bool", "default": False},
                }
            ),
            "certificates": {"type": "list", "elements": "path", "default": []},
            "exists": {"type": "list", "elements": "path", "default": []},
            "getent": _list_of(
                {
                    "database": {"type": "str", "required": True},
                    "keys": {"type": "list", "elements": "str", "default": []},
                }
            ),
            "orphans": {
                "type": "dict",
                "options": {
                    "known": {"type": "list", "elements": "str", "required": True},
                    "dirs": {"type": "list", "elements": "path", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    p = module.params
    systemctl = module.get_bin_path("systemctl", required=bool(p["system_units"] or p["users"]))
    try:
        setpriv = module.get_bin_path("setpriv") if p["users"] else None
        system, users = read_units(systemctl, p["system_units"], p["users"], setpriv=setpriv)
        acls = read_acls(p["acls"])
        certificates = read_certificates(p["certificates"])
        facts = {}
        if p["getent"]:
            getent = module.get_bin_path("getent", required=True)
            facts = read_getent(getent, p["getent"], module.run_command)
        left = orphans(p["orphans"]["known"], p["orphans"]["dirs"]) if p["orphans"] else {}
    except HostStateError as exc:
        module.fail_json(msg=str(exc))
    for name, paths in left.items():
        module.warn(orphan_warning(name, paths))
    module.exit_json(
        changed=False,
        ansible_facts=facts,
        system=system,
        users=users,
        acls=acls,
        certificates=certificates,
        exists=exists(p["exists"]),
        orphans=left,
    )


if __name__ == "__main__":
    main()
