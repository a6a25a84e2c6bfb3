# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's offline apt repository: the packages the roles may install, per release.

Built with the root file system (rootfs.py), from the same apt lists at the same moment, so
its versions are the ones the root file system was built against: the closure (with and
without Recommends) of RECIPE's repo_packages that the bare root file system lacks, as a
flat repository (Packages + Release, apt-ftparchive). Each lab host gets a hard-linked copy
bind-mounted read-only at REPO_MOUNT, its only apt source.
"""

import os
import shutil

from . import config
from .recipe import REPO_MOUNT, REPO_SOURCE
from .util import run, write_file

REPO_MARKER = ".webhosting-pods-lab-repo.json"
ORIGIN = "webhosting-pods-lab"
# inside the build chroot: where apt-get --download-only leaves the packages
ARCHIVES = "var/cache/apt/archives"


def repo_dir(release):
    return os.path.join(config.CACHE_DIR, f"repo-{release}")


def download_closure(chroot, packages, run_chroot):
    """Download (not install) packages and everything they need that chroot lacks.

    Twice: with Recommends (install_recommends: true) and without (apt may then pick
    other alternatives of a dependency), into the chroot's apt archive directory.
    run_chroot(argv, what) runs argv in the chroot.
    """
    for recommends in ("true", "false"):
        run_chroot(
            [
                "apt-get",
                "install",
                "--download-only",
                "-y",
                "-o",
                f"APT::Install-Recommends={recommends}",
                *packages,
            ],
            f"apt-get install --download-only (Recommends {recommends})",
        )
    return sorted(f for f in os.listdir(os.path.join(chroot, ARCHIVES)) if f.endswith(".deb"))


def move_debs(src, dest):
    """Move every .deb of src into dest (made if missing); returns their names, sorted."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    names = sorted(f for f in os.listdir(src) if f.endswith(".deb"))
    for name in names:
        target = os.path.join(dest, name)
        shutil.move(os.path.join(src, name), target)
        os.chmod(target, 0o644)  # apt's _apt sandbox user reads them
    return names


def index_repo(dest):
    """Write Packages and Release of the flat repository in dest (apt-ftparchive, run in
    dest so that each Filename is ./NAME.deb); returns the number of packages."""
    packages = run(["apt-ftparchive", "packages", "."], capture=True, cwd=dest)
    write_file(os.path.join(dest, "Packages"), packages)
    # the Release file goes last: it lists the checksums of Packages
    release = run(
        ["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Origin={ORIGIN}", "release", "."],
        capture=True,
        cwd=dest,
    )
    write_file(os.path.join(dest, "Release"), release)
    os.chmod(dest, 0o755)
    return sum(1 for line in packages.splitlines() if line.startswith("Package: "))


def sources_list():
    """The lab host's only apt source: the offline repository."""
    return (
        "# webhosting.pods lab: the offline repository (docs/lab.md); no network here\n"
        + REPO_SOURCE
    )


def mount_point(rootfs):
    return os.path.join(rootfs, REPO_MOUNT.lstrip("/"))
