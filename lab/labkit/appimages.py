# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's application images, built from Debian packages (no image hub).

- lab/php-pg:1 and :2: PostgreSQL 15, PHP 8.2 and Adminer (entry points app-db and
  app-adminer): a PHP application with a database server in one pod;
- lab/multi:1: several services in one container, supervisord as init running nginx,
  php-fpm and a worker for the small "notes" application (entry point app-multi).

All three share one base layer: a Debian 12 minbase with the packages of APP_RECIPE,
built once by debootstrap and apt (like the lab root file systems) and cached as a gzip
layer under the lab cache. Each image adds one small layer, lab/appimage/rootfs (the
entry points, configuration and application) plus /etc/app/version. The :2 tag differs
from :1 only there, for the tests that update an image tag.

`labctl app-images NAME` builds what is missing and pushes the images to lab host NAME's
registry (only the apps scenario and a curious demo user need them: 150 MB per host).
"""

import gzip
import hashlib
import io
import json
import os
import tarfile
import time

from . import config
from .config import BUILD_MARKER_ENV, REGISTRY_HOST, REGISTRY_PORT
from .images import (
    digest_of,
    image_arch,
    oci_manifest,
    push_image,
    registry_tags,
    tar_add,
)
from .mounts import remove_tree, umount_under
from .procs import marked_pids, proc_record, stop_pids
from .util import LabError, clean_env, flock, fmt_s, read_json, run, say, write_file

APP_RECIPE = {
    # bump when the build steps below change in a way the lists do not show
    "version": 1,
    "release": "bookworm",
    # --no-install-recommends, like a careful Dockerfile
    "packages": [
        "postgresql-15",
        "php8.2-cli",
        "php8.2-fpm",
        "php8.2-pgsql",
        "adminer",
        "nginx-light",
        "supervisor",
    ],
    # what an image needs no copy of (documentation, manuals, translations, apt's lists)
    "drop": [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/lintian",
        "var/lib/apt/lists",
        "var/cache/apt",
        "var/cache/debconf/templates.dat-old",
        "var/log",
        # the package's own cluster: the image makes its cluster in the pod's PGDATA
        "etc/postgresql/15/main",
        "var/lib/postgresql/15/main",
    ],
}
# The images: (repository, tags, entry point, title).
APP_IMAGES = (
    ("lab/php-pg", ("1", "2"), "/usr/local/bin/app-adminer", "PostgreSQL, PHP and Adminer"),
    ("lab/multi", ("1",), "/usr/local/bin/app-multi", "nginx, php-fpm and a worker"),
)
APP_UID = 1000
APP_LAYER_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "appimage", "rootfs")


def recipe_hash():
    data = json.dumps(APP_RECIPE, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def base_dir():
    return os.path.join(config.CACHE_DIR, f"appbase-{recipe_hash()}")


def base_info():
    """The cached base layer's marker (digest, diff_id, size), or None."""
    info = read_json(os.path.join(base_dir(), "info.json"))
    if not info or not os.path.isfile(os.path.join(base_dir(), "layer.tar.gz")):
        return None
    return info


def build_app_base(force=False):
    """Build the base layer unless the cache has this recipe's. Returns its marker."""
    os.makedirs(config.CACHE_DIR, exist_ok=True)
    with flock(os.path.join(config.CACHE_DIR, "appbase.lock"), what="the app image build"):
        for entry in os.listdir(config.CACHE_DIR):
            path = os.path.join(config.CACHE_DIR, entry)
            stale = entry.startswith(".appbase") or (
                entry.startswith("appbase-") and path != base_dir()
            )
            if stale:
                say(f"removing an interrupted or outdated app image build: {path}")
                builders = [proc_record(p) for p in marked_pids(path, BUILD_MARKER_ENV)]
                stop_pids([r for r in builders if r], f"processes of the build {path}")
                umount_under(path)
                remove_tree(path)
        info = base_info()
        if info and not force:
            return info
        return _build_base()


def _build_base():
    release = APP_RECIPE["release"]
    tmp = os.path.join(config.CACHE_DIR, ".appbase.tmp")
    root = os.path.join(tmp, "root")
    os.makedirs(tmp, mode=0o700)
    log = os.path.join(config.CACHE_DIR, "build-appbase.log")
    write_file(log, f"labctl app-images {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    env = clean_env(
        {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", BUILD_MARKER_ENV: tmp}
    )
    t0 = time.monotonic()
    say(f"building the app images' base layer ({release}, log: {log})")
    run(
        ["debootstrap", "--variant=minbase", release, root, config.MIRROR],
        log=log,
        what="debootstrap (app images)",
        env=env,
    )
    # no daemon may start inside the chroot; DNS for apt during the build only
    write_file(os.path.join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
    with open("/etc/resolv.conf", "rb") as fh:
        resolv = fh.read()
    resolv_path = os.path.join(root, "etc/resolv.conf")
    if os.path.lexists(resolv_path):
        os.unlink(resolv_path)
    write_file(resolv_path, resolv)
    write_file(
        os.path.join(root, "etc/apt/sources.list"),
        f"deb {config.MIRROR} {release} main\n"
        f"deb {config.MIRROR} {release}-updates main\n"
        f"deb {config.SECURITY_MIRROR} {release}-security main\n",
    )
    run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
    try:
        for argv, what in (
            (["apt-get", "update"], "apt-get update"),
            (["apt-get", "-y", "dist-upgrade"], "apt-get dist-upgrade"),
            (
                ["apt-get", "install", "-y", "--no-install-recommends", *APP_RECIPE["packages"]],
                "apt-get install (app images)",
            ),
            (["apt-get", "clean"], "apt-get clean"),
        ):
            run(["chroot", root, *argv], env=env, log=log, what=what)
    finally:
        umount_under(root)
    os.unlink(os.path.join(root, "usr/sbin/policy-rc.d"))
    os.unlink(resolv_path)
    write_file(resolv_path, "")
    for rel in APP_RECIPE["drop"]:
        path = os.path.join(root, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)
            os.makedirs(path, mode=0o755)
        elif os.path.lexists(path):
            os.unlink(path)
    say("packing the base layer")
    tar_path = os.path.join(tmp, "layer.tar")
    run(
        ["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C", root, "-cf", tar_path, "."],
        log=log,
        what="tar (app base layer)",
    )
    diff_id = _file_digest(tar_path)
    run(["gzip", "-n", "-6", tar_path], log=log, what="gzip (app base layer)")
    gz_path = tar_path + ".gz"
    info = {
        "diff_id": diff_id,
        "digest": _file_digest(gz_path),
        "size": os.path.getsize(gz_path),
        "recipe": APP_RECIPE,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_s": round(time.monotonic() - t0, 1),
    }
    remove_tree(root)
    final = base_dir()
    os.rename(gz_path, os.path.join(tmp, "layer.tar.gz"))
    write_file(os.path.join(tmp, "info.json"), json.dumps(info, indent=1, sort_keys=True) + "\n")
    os.rename(tmp, final)
    say(
        f"app base layer built in {fmt_s(info['build_s'])}: "
        f"{info['size'] // (1024 * 1024)} MB compressed"
    )
    return info


def _file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def app_layer_tar(version):
    """The small top layer: lab/appimage/rootfs (root-owned, modes as in the checkout,
    directories 0755) and /etc/app/version; /run/app as a mount point. Deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        entries = []
        for top, dirs, files in os.walk(APP_LAYER_DIR):
            rel = os.path.relpath(top, APP_LAYER_DIR)
            for d in dirs:
                entries.append((os.path.normpath(os.path.join(rel, d)), None))
            for f in files:
                entries.append((os.path.normpath(os.path.join(rel, f)), os.path.join(top, f)))
        for name, source in sorted(entries):
            if source is None:
                tar_add(tar, name, mode=0o755, kind=tarfile.DIRTYPE)
                continue
            with open(source, "rb") as fh:
                data = fh.read()
            mode = 0o755 if os.stat(source).st_mode & 0o111 else 0o644
            tar_add(tar, name, data, mode=mode)
        tar_add(tar, "etc/app/version", f"{version}\n")
        tar_add(tar, "run/app", mode=0o755, kind=tarfile.DIRTYPE)
    return buf.getvalue()


def app_image(base, repo, tag, entry, title):
    """One image as OCI blobs: (manifest bytes, {digest: bytes or a file path})."""
    top_tar = app_layer_tar(tag)
    top = gzip.compress(top_tar, mtime=0)
    image_config = {
        "architecture": image_arch(),
        "os": "linux",
        "config": {
            "User": f"{APP_UID}:{APP_UID}",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "ExposedPorts": {"8080/tcp": {}},
            "Cmd": [entry],
            "Labels": {
                "org.opencontainers.image.title": f"webhosting.pods lab {title}",
                "org.opencontainers.image.version": tag,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [base["diff_id"], digest_of(top_tar)]},
    }
    config_blob = json.dumps(image_config, sort_keys=True).encode()
    manifest = oci_manifest(config_blob, [base["digest"], top], {base["digest"]: base["size"]})
    blobs = {
        digest_of(config_blob): config_blob,
        digest_of(top): top,
        base["digest"]: os.path.join(base_dir(), "layer.tar.gz"),
    }
    return manifest, blobs


def app_image_refs():
    return [
        f"{REGISTRY_HOST}:{REGISTRY_PORT}/{repo}:{tag}"
        for repo, tags, _, _ in APP_IMAGES
        for tag in tags
    ]


def push_app_images(name, spid, force=False):
    """Build (cached) and push every app image to lab host NAME's registry."""
    base = build_app_base(force=force)
    t0 = time.monotonic()
    pushed = 0
    for repo, tags, entry, title in APP_IMAGES:
        for tag in tags:
            manifest, blobs = app_image(base, repo, tag, entry, title)
            push_image(name, spid, repo, tag, manifest, blobs)
            pushed += 1
        missing = set(tags) - registry_tags(name, spid, repo)
        if missing:
            raise LabError(f"{repo}:{sorted(missing)} not in the lab registry after the push")
    say(f"{pushed} app images in {name}'s registry ({fmt_s(time.monotonic() - t0)})")
