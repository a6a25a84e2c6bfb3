# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and replacing files without following a symlink at the target.

No Ansible import: the modules ``paths``, ``subid`` and ``pod_spec`` write their files
through ``write_atomic`` and the unit tests call it directly on a temporary directory.

``write_atomic`` writes a temporary file beside the target, gives it its owner and mode,
flushes it to disk (fsync), renames it over the target and flushes the directory, so a
reader sees the old file or the new one, never a part, and the new file survives a crash.
The rename replaces a symlink at the target, it never writes through it. When anything
fails the temporary file is removed and the target is left as it was.
"""

import contextlib
import errno
import grp
import os
import pwd
import stat
import tempfile

_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def open_nofollow(path, directory=False):
    """A read-only descriptor of ``path`` itself (``O_NOFOLLOW``: a symlink there is an
    error, ELOOP); with ``directory``, ``path`` must be a directory."""
    flags = _NOFOLLOW | (os.O_DIRECTORY if directory else os.O_NONBLOCK)
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def read_nofollow(path):
    """The bytes of the file ``path``, refusing a symlink there."""
    chunks = []
    with open_nofollow(path) as fd:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def octal_mode(value):
    """A mode given as a number or a string of octal digits (``"0640"``); None for
    anything else (no mode, or a symbolic one such as ``u=rw,g=r``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        return None


def user_id(owner):
    """The uid of an owner given by number or name; -1 when none or unknown."""
    return _id(owner, lambda name: pwd.getpwnam(name).pw_uid)


def group_id(group):
    """The gid of a group given by number or name; -1 when none or unknown."""
    return _id(group, lambda name: grp.getgrnam(name).gr_gid)


def _id(value, lookup):
    if value is None:
        return -1
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return lookup(value)
    except KeyError:
        return -1


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _old_file(path):
    """The lstat of ``path`` when it is a regular file (a symlink lends nothing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _set_attributes(fd, mode, owner, group, old):
    """Owner, then mode (a chown may clear set-id bits), of the open temporary file."""
    if old is not None:
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError:
            pass  # not root: the new file is the caller's, as any file it creates
    if owner != -1 or group != -1:
        os.fchown(fd, owner, group)
    if mode is None:
        mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask()
    os.fchmod(fd, mode)


def _fsync_directory(directory):
    with open_nofollow(directory, directory=True) as fd:
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def write_atomic(
    path, data, mode=None, owner=-1, group=-1, keep=False, exclusive=False, check=None
):
    """Write ``data`` (bytes, or text as UTF-8) to the file ``path`` atomically.

    ``owner`` and ``group`` (numeric ids, -1 for none) and ``mode`` are set on the
    temporary file before it takes the place of ``path``. What is not given is, with
    ``keep``, that of the file being replaced (when ``path`` is a regular file: a symlink
    there lends nothing), else the caller's ids and 0o666 minus the umask.

    ``exclusive``: create ``path`` only when nothing is there, never replacing what
    appeared meanwhile (a hard link of the temporary file, which fails on any existing
    name). ``check``: called with the temporary file's path before the rename; when it
    raises, ``path`` is left as it was.

    Returns False when ``exclusive`` found ``path`` taken, else True. Raises OSError
    (FileNotFoundError when the directory does not exist).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    old = _old_file(path) if keep else None
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    renamed = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            _set_attributes(handle.fileno(), mode, owner, group, old)
            os.fsync(handle.fileno())
        if check is not None:
            check(temporary)
        if exclusive:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
        else:
            os.rename(temporary, path)
            renamed = True
        _fsync_directory(directory)
    finally:
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    return True


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_directory_beneath(top_fd, relative):
    """A descriptor of the directory ``relative`` below the open directory ``top_fd``,
    walked one component at a time with ``O_NOFOLLOW``: a symlink anywhere on the way is an
    error (ELOOP or ENOTDIR), and a rename on the way after a step cannot redirect it.
    ``relative`` is a plain relative path (no ``..``, no empty component)."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError(f"{relative}: '..' is not allowed")
    fd = os.dup(top_fd)
    try:
        for part in parts:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_beneath(dir_fd, name, limit, owner=None):
    """The bytes of the regular file ``name`` in the open directory ``dir_fd`` (not a
    symlink, not a FIFO or device; with ``owner``, owned by that uid), at most ``limit``
    bytes: raises ValueError with the problem otherwise, FileNotFoundError when absent."""
    fd = os.open(name, _NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        if owner is not None and st.st_uid != owner:
            raise ValueError(f"is owned by uid {st.st_uid}, not by the hosting")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise ValueError(f"is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)


def append_beneath(dir_fd, name, data, uid, gid, mode=0o640):
    """Append ``data`` to the file ``name`` in the open directory ``dir_fd``, creating it
    for ``uid``:``gid`` when absent. Never through a symlink, never into a FIFO, a device
    or a file of another owner (a hard link): returns False then, True when written."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    created = True
    try:
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
    except FileExistsError:
        created = False
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError:
            return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
        if created:
            os.fchown(fd, uid, gid)
        elif st.st_uid != uid:
            return False
        os.write(fd, data.encode("utf-8") if isinstance(data, str) else data)
        return True
    finally:
        os.close(fd)
