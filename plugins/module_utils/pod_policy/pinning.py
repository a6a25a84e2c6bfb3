# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostPath directories pinned for podman: no check-then-use window.

Rendering checks a hostPath by its name (no symlink on the way, a directory below the
hosting). podman opens the same name again, later, when it mounts it; the tenant, who owns
every directory below the hosting root, could rename a checked directory in between and put
a symlink in its place. So the runner does not hand podman the tenant's path. Inside
podman's own user and mount namespace (``podman unshare``, where the hosting user is root
and where podman and its OCI runtime resolve mount sources), it

1. mounts a fresh, small tmpfs on a staging directory outside the tenant's tree (the state
   directory), detaching the one of the previous start;
2. walks each hostPath below the hosting root one component at a time with ``O_NOFOLLOW``
   (a symlink anywhere is refused) and bind-mounts the directory it opened — through its
   descriptor (``/proc/self/fd/N``), so the mount is the very directory the walk checked;
3. gives podman ``<staging>/<volume>`` instead of the tenant's path.

A rename after the walk moves the pinned directory, it cannot redirect the mount. The
staging mounts exist only in podman's namespace: the tenant's SFTP session and nginx never
see them. A container restarted by podman later mounts the same pinned directory.
"""

import copy
import ctypes
import errno
import os
import stat

from .constants import ENGINE_ANNOTATION_PREFIX

_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_BIND = 0x1000
_MNT_DETACH = 0x2
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# staging tmpfs: directories only (mount points), a few KiB
_STAGING_OPTIONS = b"mode=0700,size=64k,nr_inodes=1024"


class PinError(Exception):
    """A hostPath that cannot be pinned; the message names the path and the problem."""


def host_path_volumes(pod, base):
    """[(volume name, path relative to ``base``)] of a rendered pod's hostPath volumes."""
    base = os.path.normpath(base)
    result = []
    for volume in ((pod or {}).get("spec") or {}).get("volumes") or []:
        host = volume.get("hostPath") if isinstance(volume, dict) else None
        if not host:
            continue
        path = os.path.normpath(str(host.get("path", "")))
        if path != base and not path.startswith(base + "/"):
            raise PinError("volume %s: %s is not below %s" % (volume.get("name"), path, base))
        result.append((str(volume["name"]), path[len(base) + 1 :]))
    return result


def pinned_pod(pod, staging, volumes):
    """A copy of ``pod`` whose hostPath volumes are the pinned ones below ``staging``."""
    names = {name for name, _relative in volumes}
    result = copy.deepcopy(pod)
    for volume in result["spec"].get("volumes") or []:
        if volume.get("name") in names and "hostPath" in volume:
            volume["hostPath"]["path"] = os.path.join(staging, volume["name"])
    return result


def podman_pod(pod, supervised=False):
    """What podman is given of a rendered ``pod``: the engine's own annotations (in-memory
    volume sizes, probes: the runner's, and podman 4.3 refuses annotation values longer
    than 63 characters) are left out; ``supervised``, podman restarts nothing by itself (the
    supervisor does, with back-off). ``pod`` itself when nothing changes."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    own = [key for key in annotations if str(key).startswith(ENGINE_ANNOTATION_PREFIX)]
    if not own and not supervised:
        return pod
    result = copy.deepcopy(pod)
    if own:
        kept = {k: v for k, v in annotations.items() if k not in own}
        if kept:
            result["metadata"]["annotations"] = kept
        else:
            del result["metadata"]["annotations"]
    if supervised:
        result.setdefault("spec", {})["restartPolicy"] = "Never"
    return result


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(libc, source, target, fstype, flags, data):
    if libc.mount(source, os.fsencode(target), fstype, ctypes.c_ulong(flags), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


def _open_beneath(base_fd, relative):
    """The directory ``relative`` below ``base_fd``, no symlink followed on the way."""
    fd = os.dup(base_fd)
    walked = ""
    try:
        for part in [p for p in relative.split("/") if p]:
            if part in (".", ".."):
                raise PinError("/%s: %r is not allowed" % (relative, part))
            walked += "/" + part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PinError(
                        "/%s: %s is a symlink or not a directory (it changed after the check)"
                        % (relative, walked)
                    ) from None
                raise PinError("/%s: %s: %s" % (relative, walked, exc.strerror)) from None
            os.close(fd)
            fd = child
        if not stat.S_ISDIR(os.fstat(fd).st_mode):  # pragma: no cover - O_DIRECTORY
            raise PinError("/%s is not a directory" % relative)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pin(base, staging, volumes, libc=None):
    """Bind-mount each (volume name, relative path) below ``base`` on ``staging/<name>``,
    in the calling process's mount namespace (podman's: run under ``podman unshare``)."""
    libc = libc or _libc()
    # what an earlier start pinned: detached (running containers keep their own mounts)
    for _ in range(64):
        if libc.umount2(os.fsencode(staging), _MNT_DETACH) != 0:
            break
    try:
        _mount(
            libc,
            b"webhosting-pods",
            staging,
            b"tmpfs",
            _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
            _STAGING_OPTIONS,
        )
    except OSError as exc:
        raise PinError("%s: cannot mount the staging tmpfs: %s" % (staging, exc.strerror)) from None
    try:
        base_fd = os.open(base, _DIR_FLAGS)
    except OSError as exc:
        raise PinError("%s: %s" % (base, exc.strerror)) from None
    try:
        for name, relative in volumes:
            target = os.path.join(staging, name)
            os.mkdir(target, 0o700)
            fd = _open_beneath(base_fd, relative)
            try:
                _mount(libc, ("/proc/self/fd/%d" % fd).encode(), target, None, _MS_BIND, None)
            except OSError as exc:
                raise PinError("/%s: cannot pin: %s" % (relative, exc.strerror)) from None
            finally:
                os.close(fd)
    finally:
        os.close(base_fd)
