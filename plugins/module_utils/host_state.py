# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state of a pod host's hostings, read and never changed: units of the system manager
and of each hosting user's manager (``systemctl show``), named-user entries of POSIX ACLs,
certificates, name service databases (``getent``) and whether paths exist.

No Ansible import: the module ``webhosting.pods.host_state`` is a thin shell over this
file and the unit tests call it directly. Every reader raises HostStateError with the
message the module fails with.
"""

import errno
import os
import pwd
import struct
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError, run


class HostStateError(Exception):
    """A state that cannot be read."""


# --- POSIX ACLs --------------------------------------------------------------------------

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


def read_acl(path, user, default):
    """The letters of ``user``'s entry (a name, or a uid in digits: a user that does not
    exist yet) in the (default) ACL of ``path`` itself (a symlink there is not followed),
    or None when there is none. KeyError for an unknown user name."""
    uid = int(user) if str(user).isdigit() else pwd.getpwnam(user).pw_uid
    name = "system.posix_acl_default" if default else "system.posix_acl_access"
    try:
        data = os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    bits = acl_user_entries(data).get(uid)
    return None if bits is None else perm_letters(bits)


def read_acls(items):
    """{path (``:default`` appended for a default ACL): {user: letters or None}} of the
    items (dicts of path, user, default)."""
    acls = {}
    for item in items:
        key = item["path"] + (":default" if item["default"] else "")
        try:
            value = read_acl(item["path"], item["user"], item["default"])
        except KeyError:
            raise HostStateError(f"acls: no such user {item['user']!r}") from None
        except (OSError, ValueError) as exc:
            raise HostStateError(f"{item['path']}: cannot read its ACL: {exc}") from None
        acls.setdefault(key, {})[item["user"]] = value
    return acls


# --- units -------------------------------------------------------------------------------

SHOW = ["show", "--property=Id,LoadState,ActiveState,UnitFileState", "--"]
# User managers asked at once. Each is asked by `systemctl --user` run as the hosting user
# (setpriv: its uid and gid, no other groups, no new privileges) on the user's own bus in
# /run/user/UID: about 30 ms. `systemctl --user --machine=NAME@` opens a PAM session
# through systemd-machined for every call instead: about 160 ms of busy systemd on Debian
# 13 (12 s of a no-op run of 100 hostings on the 2-vCPU lab). A lying bus of a tenant's
# user could only misreport that hosting's own units.
PARALLEL = 8


def parse_show(text):
    """Blocks of `systemctl show` (separated by empty lines) as {Id: {key: value}}."""
    units = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            units[props["Id"]] = props
    return units


def show(argv, env=None):
    """(units, problem) of one `systemctl ... show` command line; env: its whole
    environment (default: this process's, in the C locale)."""
    try:
        proc = run(argv, timeout=60, env=env or dict(os.environ, LC_ALL="C"))
    except CommandError as exc:
        return {}, str(exc)
    if proc.returncode != 0:
        return {}, (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
    return parse_show(proc.stdout), None


def as_user(setpriv, systemctl, user):
    """(argv, env) of `systemctl --user` run as the user on its own bus; (None, problem)
    when the uid has no account (its manager cannot run either)."""
    uid = int(user["uid"])
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None, f"no account with uid {uid}"
    argv = [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
        systemctl,
        "--user",
    ]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
        "XDG_RUNTIME_DIR": f"/run/user/{uid}",
    }
    return argv, env


def show_users(systemctl, users, show=show, setpriv=None):
    """(units, problem) of `systemctl show` in each user's manager, in the order given:
    as the user with setpriv, else through `--machine=NAME@`."""
    if not users:
        return []

    def ask(user):
        if setpriv is None:
            return show([systemctl, "--user", f"--machine={user['name']}@"] + SHOW + user["units"])
        argv, env = as_user(setpriv, systemctl, user)
        if argv is None:
            return {}, env
        return show(argv + SHOW + user["units"], env)

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(users))) as pool:
        return list(pool.map(ask, users))


def read_units(systemctl, system_units, users, show=show, setpriv=None):
    """(system, users): per unit of ``system_units`` and each user's manager
    ``user@UID.service``, its load, active and file states; per user (dicts of name, uid,
    units), its manager's ActiveState and each unit's, read only when the manager is
    active (an ``error`` when its manager could not be asked). ``show(argv)`` returns
    (units, problem) of one command line (and its environment, for a user's manager);
    ``setpriv``: the path of setpriv, which asks each manager as its user (show_users)."""
    managers = [f"user@{u['uid']}.service" for u in users]
    wanted = list(dict.fromkeys(system_units + managers))
    shown, problem = show([systemctl] + SHOW + wanted) if wanted else ({}, None)
    if problem:
        raise HostStateError(f"systemctl show: {problem}")
    system = {
        unit: {
            "load": shown.get(unit, {}).get("LoadState", ""),
            "active": shown.get(unit, {}).get("ActiveState", ""),
            "file": shown.get(unit, {}).get("UnitFileState", ""),
        }
        for unit in wanted
    }
    states = {}
    asked = []
    for user, manager in zip(users, managers):
        state = system[manager]["active"]
        states[user["name"]] = {"manager": state, "units": {unit: "" for unit in user["units"]}}
        if state == "active" and user["units"]:
            asked.append(user)
    for user, (shown, problem) in zip(asked, show_users(systemctl, asked, show, setpriv)):
        entry = states[user["name"]]
        if problem:
            entry["error"] = problem
        for unit in user["units"]:
            entry["units"][unit] = shown.get(unit, {}).get("ActiveState", "")
    return system, states


# --- certificates ------------------------------------------------------------------------


def read_certificate(path):
    """exists, dns_names (sorted) and not_after (ISO 8601, UTC) of a PEM certificate file.
    ValueError when it holds none; ImportError without python3-cryptography."""
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


def read_certificates(paths):
    """{path: read_certificate(path)}; a file that cannot be read or holds no certificate
    gets an ``error``."""
    certificates = {}
    for path in paths:
        try:
            certificates[path] = read_certificate(path)
        except ImportError:
            raise HostStateError(
                "certificates need python3-cryptography on the managed host"
            ) from None
        except (OSError, ValueError) as exc:
            certificates[path] = {
                "exists": True,
                "dns_names": [],
                "not_after": None,
                "error": str(exc),
            }
    return certificates


# --- name service databases and paths ----------------------------------------------------


def parse_getent(text):
    """getent's lines as {key: [the other fields]} (the first entry of a key wins, as NSS
    lookups by name do)."""
    entries = {}
    for line in text.splitlines():
        if line:
            fields = line.split(":")
            entries.setdefault(fields[0], fields[1:])
    return entries


def read_getent(getent, databases, run_command):
    """{getent_DATABASE: parse_getent(...)} per item (dicts of database, keys) of
    ``databases``; ``run_command(argv)`` returns (rc, stdout, stderr)."""
    facts = {}
    for item in databases:
        rc, out, err = run_command([getent, item["database"], "--"] + item["keys"])
        # 2: one of the keys is not in the database
        if rc not in (0, 2) or (rc == 2 and not item["keys"]):
            raise HostStateError(f"getent {item['database']}: {(err or out).strip() or rc}")
        facts[f"getent_{item['database']}"] = parse_getent(out)
    return facts


def exists(paths):
    """{path: whether it exists} (a symlink is not followed)."""
    return {path: os.path.lexists(path) for path in paths}


def orphans(known, dirs):
    """{name: [paths]} of the entries of ``dirs`` that no name of ``known`` accounts for:
    hostings left on the host that the inventory no longer names. Entries starting with a
    dot (work files) are not hostings; a missing directory has none."""
    known = set(known)
    found = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise HostStateError(f"{directory}: cannot list: {exc.strerror or exc}") from None
        for name in sorted(names):
            if name.startswith(".") or name in known:
                continue
            found.setdefault(name, []).append(os.path.join(directory, name))
    return found


def orphan_warning(name, paths):
    """What the converge says of one hosting the inventory no longer names."""
    return (
        f"hosting {name} is on this host ({', '.join(paths)}) but not in the inventory: "
        "nothing manages it. Add its item back, or set it with state: absent to remove it "
        "with an archive of its files; it is never removed by itself."
    )
