# SPDX-License-Identifier: GPL-3.0-or-later
"""The cached lab root file systems and offline repositories: build, markers, locks."""

import contextlib
import json
import os
import time

from . import config
from .config import BUILD_MARKER_ENV, RELEASES, ROOTFS_MARKER
from .mounts import remove_tree, umount_under
from .procs import marked_pids, proc_record, stop_pids
from .recipe import recipe_for, recipe_hash
from .repo import (
    ARCHIVES,
    REPO_MARKER,
    download_closure,
    index_repo,
    mount_point,
    move_debs,
    repo_dir,
    sources_list,
)
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


def repo_info(release):
    """The marker of the cached offline repository, or None if missing/incomplete."""
    return read_json(os.path.join(repo_dir(release), REPO_MARKER))


def rootfs_current(release):
    """The cached rootfs and its repository are complete, of this recipe, of one build."""
    info, repo = rootfs_info(release), repo_info(release)
    return (
        bool(info)
        and bool(repo)
        and info.get("recipe_hash") == recipe_hash(release)
        and repo.get("build_id") == info.get("build_id")
    )


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


def _du_mb(path):
    return int(run(["du", "-sx", "--block-size=1M", path], capture=True).split()[0])


def _build(release, final):
    recipe = recipe_for(release)
    tmp = os.path.join(config.CACHE_DIR, f".rootfs-{release}.tmp")
    repo_tmp = os.path.join(config.CACHE_DIR, f".rootfs-{release}.tmp-repo")
    final_repo = repo_dir(release)
    log = os.path.join(config.CACHE_DIR, f"build-{release}.log")
    write_file(log, f"labctl build {release} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    timings = {}
    t0 = time.monotonic()
    build_id = f"{release}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    say(f"building the {release} rootfs in {tmp} (log: {log})")
    try:
        say("debootstrap (minbase + what a cloud image has)")
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
            t = time.monotonic()
            _chroot(tmp, ["apt-get", "update"], log, "apt-get update (chroot)")
            # the base gets the mirror's updates, like a cloud image built today
            _chroot(tmp, ["apt-get", "-y", "dist-upgrade"], log, "apt-get dist-upgrade (chroot)")
            if recipe["test_tools"]:
                say(f"apt-get install {len(recipe['test_tools'])} test-only tools")
                _chroot(
                    tmp,
                    ["apt-get", "install", "-y", "--no-install-recommends", *recipe["test_tools"]],
                    log,
                    "apt-get install test tools (chroot)",
                )
            timings["base"] = round(time.monotonic() - t, 1)

            # the offline repository: same apt lists, same moment, as the base above
            say(f"downloading {len(recipe['repo_packages'])} packages and their closure")
            t = time.monotonic()
            _chroot(tmp, ["apt-get", "clean"], log, "apt-get clean")
            download_closure(
                tmp, recipe["repo_packages"], lambda argv, what: _chroot(tmp, argv, log, what)
            )
            remove_tree(repo_tmp)
            debs = move_debs(os.path.join(tmp, ARCHIVES), repo_tmp)
            timings["download"] = round(time.monotonic() - t, 1)
            t = time.monotonic()
            count = index_repo(repo_tmp)
            # the host's only source from now on; its lists made now, so apt (and Ansible's
            # apt with update_cache) works offline; the mirror's lists are dropped
            write_file(os.path.join(tmp, "etc/apt/sources.list"), sources_list())
            os.makedirs(mount_point(tmp), mode=0o755, exist_ok=True)
            run(["mount", "--bind", "-o", "ro", repo_tmp, mount_point(tmp)])
            _chroot(tmp, ["apt-get", "update"], log, "apt-get update (offline repository)")
            timings["index"] = round(time.monotonic() - t, 1)
            _chroot(tmp, ["systemctl", "mask", *recipe["mask"]], log, "systemctl mask")
            _chroot(tmp, ["apt-get", "clean"], log, "apt-get clean")
            preinstalled = _installed(tmp, recipe["repo_packages"])
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
        size = _du_mb(tmp)
        repo_size = _du_mb(repo_tmp)
        versions = {}
        for pkg in ("systemd", "python3", "openssl"):
            rc, out, _ = run(
                ["chroot", tmp, "dpkg-query", "-W", "-f", "${Version}", pkg],
                check=False,
                capture=True,
            )
            if rc == 0 and out:
                versions[pkg] = out
        stamp = {
            "release": release,
            "recipe_hash": recipe_hash(release),
            "build_id": build_id,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        repo_marker = {**stamp, "packages": count, "size_mb": repo_size, "files": len(debs)}
        write_file(os.path.join(repo_tmp, REPO_MARKER), json.dumps(repo_marker, indent=2) + "\n")
        marker = {
            **stamp,
            "recipe": recipe,
            "timings_s": timings,
            "size_mb": size,
            "repo": {"packages": count, "size_mb": repo_size},
            # role packages the bare base already has as dependencies of its own packages
            "preinstalled_role_packages": preinstalled,
            "versions": versions,
        }
        write_file(os.path.join(tmp, ROOTFS_MARKER), json.dumps(marker, indent=2) + "\n")
        run(["sync", "-f", tmp], check=False)
        # atomic switch: the final names only ever hold complete trees; a build killed
        # between the two renames leaves markers whose build ids differ (not current)
        olds = []
        with swap_lock(release):  # hosts copying the old trees finish first
            for src, dst, kind in ((repo_tmp, final_repo, "repo"), (tmp, final, "rootfs")):
                if os.path.lexists(dst):
                    old = os.path.join(config.CACHE_DIR, f".rootfs-{release}.old-{kind}")
                    os.rename(dst, old)
                    olds.append(old)
                os.rename(src, dst)
        for old in olds:
            remove_tree(old)
    except BaseException:
        warn(f"build of {release} failed or was interrupted; removing {tmp}")
        with contextlib.suppress(Exception):
            remove_tree(tmp)
            remove_tree(repo_tmp)
        raise
    say(
        f"rootfs {release} built in {fmt_s(timings['total'])} "
        f"(debootstrap {fmt_s(timings['debootstrap'])}, base {fmt_s(timings['base'])}, "
        f"download {fmt_s(timings['download'])}, index {fmt_s(timings['index'])}), "
        f"{size} MB: {final}; offline repository: {count} packages, {repo_size} MB: "
        f"{final_repo}"
        + (f"; already in the base: {', '.join(preinstalled)}" if preinstalled else "")
    )


def _installed(root, packages):
    """Those of packages that dpkg in root has installed."""
    rc, out, _ = run(
        ["chroot", root, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
        check=False,
        capture=True,
    )
    return sorted(
        p for p, _, s in (line.partition(" ") for line in out.splitlines()) if s == "installed"
    )


def ensure_rootfs(release):
    if not rootfs_current(release):
        say(f"the cached {release} rootfs is missing or outdated: building it")
        build_rootfs(release)
