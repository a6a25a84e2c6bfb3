# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a hosting between pod hosts (playbooks/move.yml): its files packed on the old
host, unpacked on the new one, and a manifest of the tenant's tree that proves both are
the same.

- ``manifest(root, uid, gid, subuid_start, subgid_start, count)``: every entry below
  the hosting root (a link is recorded, never followed): type, mode, owner and group,
  size, the SHA-256 of a file's content or a link's target. Owners are recorded
  relative to the hosting: the hosting user, one of its subordinate ids (by offset), or
  a plain id (root).
- ``pack(...)``: GNU tar of the hosting's paths with numeric owners, ACLs, extended
  attributes and holes, then read back in full.
- ``unpack(...)``: the archive extracted on the new host, only where nothing of that
  hosting exists yet; a hosting whose subordinate ids start elsewhere on the new host gets
  its files' owners moved by the offset; the manifest computed again.

No Ansible import: the module ``webhosting.pods.move`` is a thin shell over this file and
the unit tests call it directly.
"""

import hashlib
import json
import os
import stat

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError
from ansible_collections.webhosting.pods.plugins.module_utils.command import run as run_command


class MoveError(Exception):
    """A step of a move that cannot be done; nothing of the hosting was changed by it."""


def _owner(ident, uid, subuid_start, count):
    if ident == uid:
        return "user"
    if subuid_start is not None and subuid_start <= ident < subuid_start + count:
        return f"sub+{ident - subuid_start}"
    return str(ident)


def _sha256(path):
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(root, uid, gid, subuid_start, subgid_start, count):
    """{relative path: [type, mode, owner, group, size, sha256 or link target]} of the
    tree below ``root`` (``.`` is root itself); sockets are left out (tar skips them)."""
    entries = {}
    total = 0
    for top, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        # a link to a directory is listed in dirs (and not entered): recorded as a link
        others = [n for n in dirs if os.path.islink(os.path.join(top, n))] + files
        for path in [top] + [os.path.join(top, n) for n in sorted(others)]:
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            mode = stat.S_IMODE(info.st_mode)
            owner = _owner(info.st_uid, uid, subuid_start, count)
            group = _owner(info.st_gid, gid, subgid_start, count)
            if stat.S_ISDIR(info.st_mode):
                entries[rel] = ["dir", mode, owner, group, 0, ""]
            elif stat.S_ISLNK(info.st_mode):
                entries[rel] = ["link", 0, owner, group, 0, os.readlink(path)]
            elif stat.S_ISREG(info.st_mode):
                entries[rel] = ["file", mode, owner, group, info.st_size, _sha256(path)]
                total += info.st_size
            elif stat.S_ISFIFO(info.st_mode):
                entries[rel] = ["fifo", mode, owner, group, 0, ""]
            # sockets and devices: not archived (tar skips sockets; the policy gives
            # containers no devices)
    return entries, total


def digest(entries):
    """One SHA-256 over a manifest (sorted keys)."""
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def pack(archive, sources, run=run_command, timeout=3600):
    """A gzip tar of ``sources`` (absolute paths; the missing ones are left out) at
    ``archive`` (root-only), read back in full. Returns the archived paths."""
    present = [path for path in sources if os.path.lexists(path)]
    if not present:
        raise MoveError("nothing to archive")
    part = archive + ".part"
    argv = [
        "tar",
        "--create",
        "--gzip",
        "--sparse",
        "--numeric-owner",
        "--acls",
        "--xattrs",
        "--xattrs-include=*",
        "--file=" + part,
        "--directory=/",
        "--",
    ] + [path.lstrip("/") for path in present]
    old = os.umask(0o077)
    try:
        _checked(run, argv, timeout, "tar")
        _checked(run, ["tar", "--list", "--gzip", "--file=" + part], timeout, "tar --list")
        os.chmod(part, 0o600)
        os.rename(part, archive)
    except BaseException:
        if os.path.lexists(part):
            os.unlink(part)
        raise
    finally:
        os.umask(old)
    return present


def unpack(archive, must_not_exist, run=run_command, timeout=3600):
    """Extract ``archive`` at / when none of ``must_not_exist`` exists (a hosting is never
    unpacked over files of the same name); files that exist elsewhere in the archive
    (a certbot account the new host has too) are kept."""
    there = [path for path in must_not_exist if os.path.lexists(path)]
    if there:
        raise MoveError("already on this host, nothing unpacked: " + ", ".join(there))
    argv = [
        "tar",
        "--extract",
        "--gzip",
        "--numeric-owner",
        "--same-permissions",
        "--acls",
        "--xattrs",
        "--xattrs-include=*",
        "--skip-old-files",
        "--file=" + archive,
        "--directory=/",
    ]
    _checked(run, argv, timeout, "tar --extract")


def shift_owners(root, uids, gids, count):
    """Move the owners (groups) of the files below ``root`` that are subordinate ids of the
    old host's range to the same offset in the new host's: ``uids`` and ``gids`` are
    (old start, new start). No link is followed. Returns how many entries changed."""
    if uids[0] == uids[1] and gids[0] == gids[1]:
        return 0
    changed = 0

    def moved(ident, starts):
        old, new = starts
        return ident - old + new if old <= ident < old + count else ident

    for top, dirs, files in os.walk(root, followlinks=False):
        for path in [top] + [os.path.join(top, n) for n in dirs + files]:
            info = os.lstat(path)
            uid, gid = moved(info.st_uid, uids), moved(info.st_gid, gids)
            if (uid, gid) != (info.st_uid, info.st_gid):
                os.lchown(path, uid, gid)
                if not stat.S_ISLNK(info.st_mode):
                    os.chmod(path, stat.S_IMODE(info.st_mode))  # chown drops setuid/setgid
                changed += 1
    return changed


def certbot_account(letsencrypt_dir, renewal_conf):
    """The account directory certbot's renewal configuration of a lineage names (moved
    with it, so that the new host renews with the same account), or None."""
    try:
        with open(renewal_conf, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None
    account = next(
        (
            line.split("=", 1)[1].strip()
            for line in lines
            if line.replace(" ", "").startswith("account=")
        ),
        "",
    )
    if not account:
        return None
    for top, dirs, _files in os.walk(os.path.join(letsencrypt_dir, "accounts")):
        if account in dirs:
            return os.path.join(top, account)
    return None


def _checked(run, argv, timeout, what):
    try:
        proc = run(argv, timeout)
    except CommandError as exc:
        raise MoveError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        raise MoveError(
            f"{what} exited with {proc.returncode}: {(proc.stderr or '').strip()[-2000:]}"
        )
    return proc
