# SPDX-License-Identifier: GPL-3.0-or-later
"""Mounts: what is mounted under a path, unmounting it, removing a tree safely."""

import os
import re

from .util import LabError, run, warn


def _unescape(path):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mountinfo(path="/proc/self/mountinfo"):
    """List of (mount point, fstype, source) in this mount namespace, in mount order."""
    out = []
    with open(path) as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            out.append((_unescape(fields[4]), rfields[0], _unescape(rfields[1])))
    return out


def mounts_under(path):
    path = os.path.realpath(path).rstrip("/")
    found = [m for m in mountinfo() if m[0] == path or m[0].startswith(path + "/")]
    # deepest first, most recent first
    return list(reversed(found))


def umount_under(path):
    for mnt, _, _ in mounts_under(path):
        if run(["umount", mnt], check=False, capture=True)[0] != 0:
            warn(f"umount {mnt} failed, detaching it lazily")
            run(["umount", "-l", mnt], check=False, capture=True)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot unmount {', '.join(m[0] for m in left)}")


def remove_tree(path):
    """rm -rf that never crosses into a mount and never follows symlinks."""
    if not os.path.lexists(path):
        return
    umount_under(path)
    run(["rm", "-rf", "--one-file-system", "--", path], what=f"removing {path}")
