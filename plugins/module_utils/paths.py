# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge many paths (directories, files, symlinks) in one call, never following a
symlink a tenant may have planted.

No Ansible import: the module ``webhosting.pods.paths`` is a thin shell over this file and
the unit tests call it directly on a temporary directory.

Safety rules (a hosting's tree is partly writable by its tenant, and this runs as root):

* The last component of every path is opened with ``O_NOFOLLOW``; ownership and mode are
  set through that file descriptor, so a symlink swapped in at the last moment is never
  followed. A symlink where a directory or a file is expected is an error.
* Every parent component that lies in a directory not owned by root is checked with
  ``lstat`` and must not be a symlink either.
* Files are written to a temporary file in the same directory and renamed over the old
  one (the rename replaces a symlink, it does not write through it).
* File contents never appear in the returned diff: it lists type, owner, group, mode and
  a checksum, so secrets (env files, registry credentials) can be managed here.
"""

import errno
import fnmatch
import hashlib
import os
import stat

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError, run
from ansible_collections.webhosting.pods.plugins.module_utils.fileio import (
    open_nofollow,
    read_nofollow,
    write_atomic,
)

STATES = ("directory", "file", "link", "absent", "moved")


class PathsError(Exception):
    """A path that cannot be converged safely."""


def _mode(value, path):
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    try:
        return int(text, 8)
    except ValueError:
        raise PathsError(f"{path}: mode {value!r} is not an octal number") from None


def normalise(entries):
    """Validate the requested entries; returns a list of dicts with defaults filled in."""
    result = []
    seen = set()
    for index, raw in enumerate(entries):
        where = f"paths[{index}]"
        if not isinstance(raw, dict):
            raise PathsError(f"{where}: must be a mapping")
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise PathsError(f"{where}.path: must be an absolute path")
        path = os.path.normpath(path)
        if path in seen:
            raise PathsError(f"{where}.path: {path} is listed twice")
        seen.add(path)
        state = raw.get("state", "file" if "content" in raw else "directory")
        if state not in STATES:
            raise PathsError(f"{path}: state must be one of {', '.join(STATES)}")
        entry = {
            "path": path,
            "state": state,
            "owner": raw.get("owner"),
            "group": raw.get("group"),
            "mode": _mode(raw.get("mode"), path),
            "content": raw.get("content"),
            "src": raw.get("src"),
            "create_only": bool(raw.get("create_only", False)),
            "keep_content": bool(raw.get("keep_content", False)),
            "validate": raw.get("validate"),
        }
        for key in ("owner", "group"):
            if entry[key] is not None:
                try:
                    entry[key] = int(entry[key])
                except (TypeError, ValueError):
                    raise PathsError(f"{path}: {key} must be a numeric id") from None
        if state == "file" and entry["content"] is None:
            raise PathsError(f"{path}: a file needs content")
        if state == "link" and not entry["src"]:
            raise PathsError(f"{path}: a link needs src")
        if state == "moved":
            dest = raw.get("dest")
            if not isinstance(dest, str) or os.path.dirname(os.path.normpath(dest)) != (
                os.path.dirname(path)
            ):
                raise PathsError(f"{path}: moved needs dest, a name in the same directory")
            entry["dest"] = os.path.normpath(dest)
        validate = entry["validate"]
        if validate is not None:
            if state != "file":
                raise PathsError(f"{path}: validate is for files")
            if (
                not isinstance(validate, (list, tuple))
                or not validate
                or not all(isinstance(a, str) for a in validate)
                or not any("%s" in a for a in validate)
            ):
                raise PathsError(
                    f"{path}: validate must be a command as a list of strings, with %s"
                    " standing for the new file"
                )
        result.append(entry)
    return result


def _describe(st, content_sum=None):
    if st is None:
        return "absent"
    if stat.S_ISLNK(st.st_mode):
        kind = "link"
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    text = f"{kind} {st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o}"
    if content_sum:
        text += f" sha1:{content_sum}"
    return text


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _check_parents(path):
    """Refuse a symlink in any parent component that sits in a non-root-owned directory."""
    parts = path.strip("/").split("/")[:-1]
    current = "/"
    parent_owner = 0
    for part in parts:
        current = os.path.join(current, part)
        st = _lstat(current)
        if st is None:
            return  # created by an earlier entry in check mode, or missing: reported later
        if stat.S_ISLNK(st.st_mode) and parent_owner != 0:
            raise PathsError(
                f"{path}: parent {current} is a symlink in a directory not owned by root"
            )
        if not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            raise PathsError(f"{path}: parent {current} is not a directory")
        parent_owner = st.st_uid if not stat.S_ISLNK(st.st_mode) else parent_owner


def _sha1(data):
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - a checksum for the diff, not security


def _chown_ids(entry):
    """The (uid, gid) to give a path: -1 (keep) where the entry names none."""
    return (
        entry["owner"] if entry["owner"] is not None else -1,
        entry["group"] if entry["group"] is not None else -1,
    )


def _fix_attrs(fd, st, entry):
    """chown/chmod through an open descriptor; returns True when something changed."""
    changed = False
    uid, gid = _chown_ids(entry)
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        os.fchown(fd, uid, gid)
        changed = True
    if entry["mode"] is not None and stat.S_IMODE(st.st_mode) != entry["mode"]:
        os.fchmod(fd, entry["mode"])
        changed = True
    return changed


def _fix_attrs_of(path, entry, directory=False):
    """_fix_attrs() of ``path`` itself, opened without following a symlink there."""
    with open_nofollow(path, directory=directory) as fd:
        _fix_attrs(fd, os.fstat(fd), entry)


def _wants_attrs(st, entry):
    if entry["owner"] is not None and st.st_uid != entry["owner"]:
        return True
    if entry["group"] is not None and st.st_gid != entry["group"]:
        return True
    return entry["mode"] is not None and stat.S_IMODE(st.st_mode) != entry["mode"]


def _directory(entry, st, check_mode):
    path = entry["path"]
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise PathsError(f"{path}: exists as {_describe(st).split()[0]}, expected a directory")
    if st is None:
        if check_mode:
            return "created"
        try:
            os.mkdir(path, 0o700)
        except FileNotFoundError:
            raise PathsError(f"{path}: parent directory does not exist") from None
    elif not _wants_attrs(st, entry):
        return None
    elif check_mode:
        return "updated"
    _fix_attrs_of(path, entry, directory=True)
    return "created" if st is None else "updated"


def _file(entry, st, check_mode):
    path = entry["path"]
    data = (
        entry["content"].encode("utf-8") if isinstance(entry["content"], str) else entry["content"]
    )
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
            raise PathsError(f"{path}: exists as {_describe(st).split()[0]}, expected a file")
    if st is not None and entry["create_only"]:
        return None
    if st is not None and entry["keep_content"]:
        # a file others write (a log): its owner and mode are ours, its content is not;
        # one with another name elsewhere (a hard link) is not taken over
        if st.st_nlink != 1:
            raise PathsError(f"{path}: has {st.st_nlink} names (hard links), expected one")
        if not _wants_attrs(st, entry):
            return None
        if not check_mode:
            _fix_attrs_of(path, entry)
        return "updated"
    if st is not None and stat.S_ISREG(st.st_mode):
        same = read_nofollow(path) == data
        if same and not _wants_attrs(st, entry):
            return None
        if same:
            if check_mode:
                return "updated"
            _fix_attrs_of(path, entry)
            return "updated"
    if check_mode:
        return "created" if st is None else "updated"
    uid, gid = _chown_ids(entry)
    check = None
    if entry["validate"]:
        check = lambda tmp: _validate(path, tmp, entry["validate"])  # noqa: E731
    try:
        written = write_atomic(
            path,
            data,
            mode=entry["mode"] if entry["mode"] is not None else 0o644,
            owner=uid,
            group=gid,
            # create_only: never replace something that appeared meanwhile
            exclusive=entry["create_only"],
            check=check,
        )
    except FileNotFoundError:
        raise PathsError(f"{path}: parent directory does not exist") from None
    if not written:
        return None
    return "created" if st is None else "updated"


def _validate(path, tmp, argv):
    """Run the validate command on the new content (a temporary file beside ``path``); the
    file is not replaced when it fails. An argv list: no shell ever parses it."""
    command = [arg.replace("%s", tmp) for arg in argv]
    try:
        proc = run(command, timeout=120)
    except CommandError as exc:
        raise PathsError(f"{path}: validate: cannot run {command[0]}: {exc}") from None
    if proc.returncode != 0:
        output = " ".join((proc.stderr or proc.stdout).replace(tmp, path).split())[:2000]
        raise PathsError(
            f"{path}: the new content fails validation ({command[0]} exited"
            f" {proc.returncode}), the file was left as it was: {output}"
        )


def _link(entry, st, check_mode):
    path = entry["path"]
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise PathsError(f"{path}: exists as a directory, expected a link")
    if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == entry["src"]:
        uid = entry["owner"] if entry["owner"] is not None else st.st_uid
        gid = entry["group"] if entry["group"] is not None else st.st_gid
        if (st.st_uid, st.st_gid) == (uid, gid):
            return None
        if not check_mode:
            os.lchown(path, uid, gid)
        return "updated"
    if check_mode:
        return "created" if st is None else "updated"
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(entry["src"], tmp)
    try:
        os.lchown(tmp, *_chown_ids(entry))
        os.rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return "created" if st is None else "updated"


def _absent(entry, st, check_mode):
    path = entry["path"]
    if st is None:
        return None
    if not check_mode:
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:
                    raise PathsError(f"{path}: directory is not empty") from None
                raise
        else:
            os.unlink(path)
    return "removed"


def _moved(entry, st, check_mode):
    """A file renamed by a new release (the tenant's pod.yaml, now pod-NAME.yaml): moved to
    ``dest`` when that name is still free, else left alone (what the tenant wrote under
    the new name wins; nothing is lost). The link is made with link(2), which fails rather
    than replace a file that appeared meanwhile, and a symlink is moved as itself, never
    followed."""
    if st is None or stat.S_ISDIR(st.st_mode) or _lstat(entry["dest"]) is not None:
        return None
    if check_mode:
        return "moved"
    try:
        os.link(entry["path"], entry["dest"], follow_symlinks=False)
    except FileExistsError:
        return None
    os.unlink(entry["path"])
    return "moved"


_HANDLERS = {
    "directory": _directory,
    "file": _file,
    "link": _link,
    "absent": _absent,
    "moved": _moved,
}


def converge(entries, prune=None, probe=None, check_mode=False):
    """Bring every entry to its state, in order. Returns a dict with ``changed``,
    ``actions`` ({path: created|updated|removed}), ``before``/``after`` descriptions of
    changed paths and ``exists`` ({path: bool}) for the ``probe`` paths."""
    entries = normalise(entries)
    actions = {}
    before = {}
    after = {}
    for entry in entries:
        path = entry["path"]
        _check_parents(path)
        st = _lstat(path)
        try:
            action = _HANDLERS[entry["state"]](entry, st, check_mode)
        except PathsError:
            raise
        except OSError as exc:
            raise PathsError(f"{path}: {exc.strerror or exc}") from None
        if action:
            actions[path] = action
            before[path] = _describe(st)
            after[path] = _planned(entry)
    managed = {e["path"] for e in entries}
    for rule in prune or []:
        directory = os.path.normpath(rule["dir"])
        pattern = rule["pattern"]
        st = _lstat(directory)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if path in managed or not fnmatch.fnmatch(name, pattern):
                continue
            st = _lstat(path)
            if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if rule.get("owner") is not None and st.st_uid != int(rule["owner"]):
                continue
            if not check_mode:
                os.unlink(path)
            actions[path] = "removed"
            before[path] = _describe(st)
            after[path] = "absent"
    exists = {os.path.normpath(p): os.path.lexists(p) for p in probe or []}
    return {
        "changed": bool(actions),
        "actions": actions,
        "before": before,
        "after": after,
        "exists": exists,
    }


def _planned(entry):
    kind = entry["state"]
    if kind == "absent":
        return "absent"
    if kind == "moved":
        # under the old name only: the new one was not made (seeded) by this run
        return f"moved to {entry['dest']}"
    owner = "-" if entry["owner"] is None else entry["owner"]
    group = "-" if entry["group"] is None else entry["group"]
    mode = "-" if entry["mode"] is None else f"{entry['mode']:04o}"
    text = f"{kind} {owner}:{group} {mode}"
    if kind == "file":
        data = (
            entry["content"].encode("utf-8")
            if isinstance(entry["content"], str)
            else entry["content"]
        )
        text += f" sha1:{_sha1(data)}"
    if kind == "link":
        text += f" -> {entry['src']}"
    return text


def diff_text(result):
    """before/after texts for Ansible's diff: one line per changed path."""
    paths = sorted(result["actions"])
    return (
        "".join(f"{p}: {result['before'][p]}\n" for p in paths),
        "".join(f"{p}: {result['after'][p]}\n" for p in paths),
    )
