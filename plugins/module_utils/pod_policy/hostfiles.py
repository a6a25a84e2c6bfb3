# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file-system checks of rendering: hostPath directories below the hosting and the
containers' env files, both without following any symlink."""

import os
import stat

from .constants import MAX_ENV_FILE_BYTES
from .messages import _show
from .values import _ENV_NAME_RE


def _resolve_host_dir(base, tenant_path):
    """Resolve a tenant hostPath below ``base`` without following any symlink.

    Returns (absolute path, None) or (None, problem)."""
    parts = [part for part in tenant_path.split("/") if part not in ("", ".")]
    shown = "/" + "/".join(parts)
    if ".." in parts:
        return None, '%s must not contain ".."' % _show(tenant_path)
    try:
        if not stat.S_ISDIR(os.stat(base).st_mode):
            return None, "%s does not exist in the hosting" % shown
    except OSError:
        return None, "%s does not exist in the hosting" % shown
    current = base
    walked = ""
    for part in parts:
        current = os.path.join(current, part)
        walked += "/" + part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None, "%s does not exist in the hosting" % shown
        except PermissionError:
            return None, "%s cannot be checked (permission denied at %s)" % (shown, walked)
        except (OSError, ValueError) as exc:
            return None, "%s cannot be checked (%s)" % (
                shown,
                getattr(exc, "strerror", None) or type(exc).__name__,
            )
        if stat.S_ISLNK(info.st_mode):
            return None, "%s goes through the symlink %s; symlinks are not followed" % (
                shown,
                walked,
            )
        if not stat.S_ISDIR(info.st_mode):
            if walked == shown:
                return None, "%s is not a directory" % shown
            return None, "%s: %s is not a directory" % (shown, walked)
    resolved = os.path.normpath(current)
    if os.path.commonpath([base, resolved]) != base:  # pragma: no cover - defence in depth
        return None, "%s is outside the hosting" % shown
    return resolved, None


def _read_env_file(path, rep, texts=None):
    """Read ``path`` when present: a regular file, not a symlink, opened without following
    links.  Returns a list of (name, value, line number) or None when there is no file;
    its text goes to ``texts`` (by path) when given."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    if stat.S_ISLNK(info.st_mode):
        rep.error(path, "is a symlink; env files must be regular files")
        return []
    if not stat.S_ISREG(info.st_mode):
        rep.error(path, "is not a regular file")
        return []
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            info.st_dev,
            info.st_ino,
        ):
            rep.error(path, "changed while being read")
            return []
        chunks = []
        size = 0
        while size <= MAX_ENV_FILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_ENV_FILE_BYTES:
        rep.error(path, "larger than %d bytes" % MAX_ENV_FILE_BYTES)
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        rep.error(path, "not valid UTF-8 text (byte %d)" % exc.start)
        return []
    if texts is not None:
        texts[path] = text
    return _parse_env_text(text, path, rep)


def tenant_env_snapshot(policy, result):
    """{file name: text} of the tenant's own env files (those in ``container_env_dir``) as
    a render (RenderResult) validated them: kept beside the last valid pod file, so that a
    start that falls back to it gets the env files that were valid with it."""
    directory = policy.get("container_env_dir")
    if not directory:
        return {}
    directory = os.path.normpath(directory)
    return {
        os.path.basename(path): text
        for path, text in result.env_texts.items()
        if os.path.dirname(os.path.normpath(path)) == directory
    }


def last_valid_env_dir(last_valid):
    """The directory of the tenant env files kept with the last valid pod file: its own
    (the hosting's state directory), where they are the only ``*.env`` files."""
    return os.path.dirname(os.path.abspath(last_valid))


def kept_env_changes(directory, texts):
    """What makes ``texts`` ({name: text}) the only ``*.env`` files of ``directory`` (the
    hosting's state directory): (names to remove, {name: text} to write, only where the
    file differs). A kept file is read without following a link; an unreadable one is
    written again. Raises OSError when the directory cannot be listed."""
    present = [name for name in os.listdir(directory) if name.endswith(".env")]
    stale = sorted(set(present) - set(texts))
    changed = {}
    for name, text in sorted(texts.items()):
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(os.path.join(directory, name), flags)
            try:
                same = os.read(fd, MAX_ENV_FILE_BYTES + 1) == text.encode("utf-8")
            finally:
                os.close(fd)
        except OSError:
            same = False
        if not same:
            changed[name] = text
    return stale, changed


def with_env_dir(policy, directory):
    """The policy with the tenant's env files read from ``directory`` (the kept ones)."""
    return dict(policy, container_env_dir=directory)


def _parse_env_text(text, path, rep):
    entries = []
    for number, line in enumerate(text.split("\n"), 1):
        where = "%s:%d" % (path, number)
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\x00" in line:
            rep.error(where, "contains a NUL character")
            continue
        if "=" not in line:
            rep.error(where, "expected KEY=VALUE")
            continue
        name, value = line.split("=", 1)
        name = name.strip()
        if not _ENV_NAME_RE.fullmatch(name):
            rep.error(where, "%s is not a valid variable name" % _show(name))
            continue
        if "\r" in value:
            rep.error(where, "contains a carriage return")
            continue
        entries.append((name, value, number))
    return entries
