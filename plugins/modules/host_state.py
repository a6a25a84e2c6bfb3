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
        description: User name (for C(systemctl --user --machine=NAME@)).
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
ansible_facts:
  description: C(getent_<database>) per database of O(getent), each entry's fields by its key.
  returned: when O(getent) is given
  type: dict
  sample:
    getent_passwd: {"shop": ["x", "10001", "10001", "", "/home/shop", "/usr/sbin/nologin"]}
"""

import errno
import os
import pwd
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

# Linux POSIX ACL extended attribute: a u32 version (2), then entries of u16 tag,
# u16 permissions, u32 id (little endian). Tag 2 is a named user (ACL_USER).
_ACL_VERSION = 2
_ACL_USER = 0x02
_ENTRY = struct.Struct("<HHI")


def acl_user_entries(data):
    """{uid: permission bits} of the named-user entries of an ACL xattr value."""
    if len(data) < 4 or struct.unpack_from("<I", data)[0] != _ACL_VERSION:
        raise ValueError("not a version 2 POSIX ACL")
    entries = {}
    for offset in range(4, len(data) - _ENTRY.size + 1, _ENTRY.size):
        tag, perm, ident = _ENTRY.unpack_from(data, offset)
        if tag == _ACL_USER:
            entries[ident] = perm
    return entries


def perm_letters(bits):
    return "".join(letter if bits & bit else "-" for letter, bit in (("r", 4), ("w", 2), ("x", 1)))


def _acl(path, user, default):
    uid = pwd.getpwnam(user).pw_uid
    name = "system.posix_acl_default" if default else "system.posix_acl_access"
    try:
        data = os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    bits = acl_user_entries(data).get(uid)
    return None if bits is None else perm_letters(bits)


def parse_show(text):
    """Blocks of `systemctl show` (separated by empty lines) as {Id: {key: value}}."""
    units = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            units[props["Id"]] = props
    return units


_SHOW = ["show", "--property=Id,LoadState,ActiveState,UnitFileState", "--"]
# User managers asked at once: each `systemctl --user --machine=NAME@` mostly waits for
# D-Bus (about 60 ms), so a host with many hostings is read in a fraction of the time.
_PARALLEL = 8


def _show_one(argv):
    """(units, problem) of one `systemctl ... show` command line."""
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(os.environ, LC_ALL="C"),
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, to_native(exc)
    if proc.returncode != 0:
        return {}, (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
    return parse_show(proc.stdout), None


def _show_users(systemctl, users):
    """(units, problem) of `systemctl show` in each user's manager, in the order given."""
    argvs = [[systemctl, "--user", f"--machine={u['name']}@"] + _SHOW + u["units"] for u in users]
    if not argvs:
        return []
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(argvs))) as pool:
        return list(pool.map(_show_one, argvs))


def _certificate(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {"exists": False, "dns_names": [], "not_after": None}
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = sorted(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    after = getattr(cert, "not_valid_after_utc", None)
    if after is None:  # cryptography < 42
        after = cert.not_valid_after
        text = after.isoformat() + "+00:00"
    else:
        text = after.isoformat()
    return {"exists": True, "dns_names": names, "not_after": text}


def parse_getent(text):
    """getent's lines as {key: [the other fields]} (the first entry of a key wins, as NSS
    lookups by name do)."""
    entries = {}
    for line in text.splitlines():
        if line:
            fields = line.split(":")
            entries.setdefault(fields[0], fields[1:])
    return entries


def _getent(module, databases):
    if not databases:
        return {}
    getent = module.get_bin_path("getent", required=True)
    facts = {}
    for item in databases:
        rc, out, err = module.run_command([getent, item["database"], "--"] + item["keys"])
        # 2: one of the keys is not in the database
        if rc not in (0, 2) or (rc == 2 and not item["keys"]):
            module.fail_json(msg=f"getent {item['database']}: {(err or out).strip() or rc}")
        facts[f"getent_{item['database']}"] = parse_getent(out)
    return facts


def main():
    module = AnsibleModule(
        argument_spec={
            "system_units": {"type": "list", "elements": "str", "default": []},
            "users": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "uid": {"type": "int", "required": True},
                    "units": {"type": "list", "elements": "str", "default": []},
                },
            },
            "acls": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "user": {"type": "str", "required": True},
                    "default": {"type": "bool", "default": False},
                },
            },
            "certificates": {"type": "list", "elements": "path", "default": []},
            "exists": {"type": "list", "elements": "path", "default": []},
            "getent": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "database": {"type": "str", "required": True},
                    "keys": {"type": "list", "elements": "str", "default": []},
                },
            },
        },
        supports_check_mode=True,
    )
    p = module.params
    systemctl = module.get_bin_path("systemctl", required=bool(p["system_units"] or p["users"]))
    managers = [f"user@{u['uid']}.service" for u in p["users"]]
    wanted = list(dict.fromkeys(p["system_units"] + managers))
    shown, problem = _show_one([systemctl] + _SHOW + wanted) if wanted else ({}, None)
    if problem:
        module.fail_json(msg=f"systemctl show: {problem}")
    system = {
        unit: {
            "load": shown.get(unit, {}).get("LoadState", ""),
            "active": shown.get(unit, {}).get("ActiveState", ""),
            "file": shown.get(unit, {}).get("UnitFileState", ""),
        }
        for unit in wanted
    }
    users = {}
    asked = []
    for user, manager in zip(p["users"], managers):
        state = system[manager]["active"]
        users[user["name"]] = {"manager": state, "units": {unit: "" for unit in user["units"]}}
        if state == "active" and user["units"]:
            asked.append(user)
    for user, (shown, problem) in zip(asked, _show_users(systemctl, asked)):
        entry = users[user["name"]]
        if problem:
            entry["error"] = problem
        for unit in user["units"]:
            entry["units"][unit] = shown.get(unit, {}).get("ActiveState", "")

    acls = {}
    for item in p["acls"]:
        key = item["path"] + (":default" if item["default"] else "")
        try:
            value = _acl(item["path"], item["user"], item["default"])
        except KeyError:
            module.fail_json(msg=f"acls: no such user {item['user']!r}")
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"{item['path']}: cannot read its ACL: {to_native(exc)}")
        acls.setdefault(key, {})[item["user"]] = value

    certificates = {}
    for path in p["certificates"]:
        try:
            certificates[path] = _certificate(path)
        except ImportError:
            module.fail_json(msg="certificates need python3-cryptography on the managed host")
        except (OSError, ValueError) as exc:
            certificates[path] = {
                "exists": True,
                "dns_names": [],
                "not_after": None,
                "error": to_native(exc),
            }

    facts = _getent(module, p["getent"])
    module.exit_json(
        changed=False,
        ansible_facts=facts,
        system=system,
        users=users,
        acls=acls,
        certificates=certificates,
        exists={path: os.path.lexists(path) for path in p["exists"]},
    )


if __name__ == "__main__":
    main()
