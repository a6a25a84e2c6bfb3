# SPDX-License-Identifier: GPL-3.0-or-later
"""The cached lab root file systems: build (debootstrap + packages), markers, locks."""

import contextlib
import json
import os
import time

from . import config
from .config import BUILD_MARKER_ENV, RELEASES, ROOTFS_MARKER
from .mounts import remove_tree, umount_under
from .procs import marked_pids, proc_record, stop_pids
from .recipe import recipe_for, recipe_hash
from .util import (
    LabError,
    clean_env,
    flock,
    fmt_s,
    read_json,
    read_text,
    replace_file,
    run,
    say,
    warn,
    write_file,
)


def rootfs_dir(release):
    return os.path.join(config.CACHE_DIR, f"rootfs-{release}")


def rootfs_info(release):
    """The marker of the cached rootfs, or None if missing/incomplete."""
    return read_json(os.path.join(rootfs_dir(release), ROOTFS_MARKER))


def rootfs_current(release):
    info = rootfs_info(release)
    return bool(info) and info.get("recipe_hash") == recipe_hash(release)


def check_release(release):
    if release not in RELEASES:
        raise LabError(f"unknown release {release!r} (one of {', '.join(RELEASES)})")


def build_rootfs(release, force=False):
    check_release(release)
    os.makedirs(config.CACHE_DIR, exist_ok=True)
    final = rootfs_dir(release)
    with flock(
        os.path.join(config.CACHE_DIR, f"rootfs-{release}.lock"), what=f"the {release} build"
    ):
        # leftovers of a killed build: we hold the lock, so nobody is using them
        for entry in os.listdir(config.CACHE_DIR):
            if entry.startswith((f".rootfs-{release}.tmp", f".rootfs-{release}.old")):
                path = os.path.join(config.CACHE_DIR, entry)
                say(f"removing the leftover of an interrupted build: {path}")
                # a killed labctl leaves its debootstrap/apt-get running: stop them first
                builders = [proc_record(p) for p in marked_pids(path, BUILD_MARKER_ENV)]
                stop_pids([r for r in builders if r], f"processes of the interrupted build {path}")
                remove_tree(path)
        if os.path.isdir(final) and rootfs_info(release) is None:
            say(f"{final} has no completion marker: removing it")
            with swap_lock(release):
                remove_tree(final)
        if rootfs_current(release) and not force:
            info = rootfs_info(release)
            say(f"rootfs {release} is up to date ({final}, built {info.get('built')})")
            return False
        _build(release, final)
        return True


def swap_lock(release, shared=False):
    """Held exclusively while the final rootfs dir changes, shared while `up` copies it."""
    return flock(
        os.path.join(config.CACHE_DIR, f"rootfs-{release}.swap.lock"),
        shared=shared,
        what=f"the {release} rootfs",
    )


def _chroot(tmp, argv, log, what, env=None):
    env = env or clean_env(
        {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", BUILD_MARKER_ENV: tmp}
    )
    return run(["chroot", tmp, *argv], env=env, log=log, what=what)


def _build(release, final):
    recipe = recipe_for(release)
    tmp = os.path.join(config.CACHE_DIR, f".rootfs-{release}.tmp")
    log = os.path.join(config.CACHE_DIR, f"build-{release}.log")
    write_file(log, f"labctl build {release} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    timings = {}
    t0 = time.monotonic()
    say(f"building the {release} rootfs in {tmp} (log: {log})")
    try:
        say("debootstrap (minbase)")
        t = time.monotonic()
        run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(recipe["include"]),
                release,
                tmp,
                config.MIRROR,
            ],
            log=log,
            what="debootstrap",
            env=clean_env({"DEBIAN_FRONTEND": "noninteractive", BUILD_MARKER_ENV: tmp}),
        )
        timings["debootstrap"] = round(time.monotonic() - t, 1)

        # no daemon may start inside the chroot (nginx would bind the machine's port 80)
        write_file(os.path.join(tmp, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
        # DNS for apt during the build only
        replace_file(os.path.join(tmp, "etc/resolv.conf"), read_text("/etc/resolv.conf", ""))
        sources = (
            f"deb {config.MIRROR} {release} main\n"
            f"deb {config.MIRROR} {release}-updates main\n"
            f"deb {config.SECURITY_MIRROR} {release}-security main\n"
        )
        write_file(os.path.join(tmp, "etc/apt/sources.list"), sources)
        run(["mount", "-t", "proc", "proc", os.path.join(tmp, "proc")])
        try:
            say(f"apt-get install {len(recipe['packages'])} packages")
            t = time.monotonic()
            _chroot(tmp, ["apt-get", "update"], log, "apt-get update (chroot)")
            _chroot(
                tmp,
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-o",
                    "Dpkg::Options::=--force-confdef",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    *recipe["packages"],
                ],
                log,
                "apt-get install (chroot)",
            )
            timings["packages"] = round(time.monotonic() - t, 1)
            _chroot(tmp, ["systemctl", "mask", *recipe["mask"]], log, "systemctl mask")
            _chroot(tmp, ["apt-get", "clean"], log, "apt-get clean")
        finally:
            umount_under(tmp)

        os.unlink(os.path.join(tmp, "usr/sbin/policy-rc.d"))
        replace_file(os.path.join(tmp, "etc/resolv.conf"), "nameserver 127.0.0.1\n")
        # every host gets its own machine id at `up`
        replace_file(os.path.join(tmp, "etc/machine-id"), "")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(tmp, "var/lib/dbus/machine-id"))
        for sub in ("var/cache/apt/archives/partial",):
            os.makedirs(os.path.join(tmp, sub), exist_ok=True)
        for junk in ("var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(tmp, junk))

        timings["total"] = round(time.monotonic() - t0, 1)
        size = run(["du", "-sx", "--block-size=1M", tmp], capture=True).split()[0]
        versions = {}
        for pkg in ("systemd", "podman", "nginx", "runc", "crun", "python3"):
            rc, out, _ = run(
                ["chroot", tmp, "dpkg-query", "-W", "-f", "${Version}", pkg],
                check=False,
                capture=True,
            )
            if rc == 0 and out:
                versions[pkg] = out
        marker = {
            "release": release,
            "recipe_hash": recipe_hash(release),
            "recipe": recipe,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timings_s": timings,
            "size_mb": int(size),
            "versions": versions,
        }
        write_file(os.path.join(tmp, ROOTFS_MARKER), json.dumps(marker, indent=2) + "\n")
        run(["sync", "-f", tmp], check=False)
        # atomic switch: the final name only ever holds a complete tree
        old = None
        with swap_lock(release):  # hosts copying the old tree finish first
            if os.path.lexists(final):
                old = os.path.join(config.CACHE_DIR, f".rootfs-{release}.old")
                os.rename(final, old)
            os.rename(tmp, final)
        if old:
            remove_tree(old)
    except BaseException:
        warn(f"build of {release} failed or was interrupted; removing {tmp}")
        with contextlib.suppress(Exception):
            remove_tree(tmp)
        raise
    say(
        f"rootfs {release} built in {fmt_s(timings['total'])} "
        f"(debootstrap {fmt_s(timings['debootstrap'])}, packages {fmt_s(timings['packages'])}), "
        f"{size} MB: {final}"
    )


def ensure_rootfs(release):
    if not rootfs_current(release):
        say(f"the cached {release} rootfs is missing or outdated: building it")
        build_rootfs(release)
