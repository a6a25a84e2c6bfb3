# SPDX-License-Identifier: GPL-3.0-or-later
"""Test images: lab/httpd:1 and :2, built inside the lab host and pushed to its registry."""

import io
import json
import os
import re
import tarfile
import time

from .config import (
    IMAGE_PORT,
    IMAGE_REPO,
    IMAGE_TAGS,
    IMAGE_UID,
    REGISTRY_HOST,
    REGISTRY_PORT,
    REGISTRY_USER,
)
from .hosts import host_dir, host_run, save_state
from .services import curl_in_host_net
from .util import LabError, read_text, run


def image_ref(tag):
    return f"{REGISTRY_HOST}:{REGISTRY_PORT}/{IMAGE_REPO}:{tag}"


def _tar_add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=None, uid=0):
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.mtime, info.type = mode, uid, uid, 946684800, kind
    if link:
        info.linkname = link
    if data is not None:
        data = data.encode() if isinstance(data, str) else data
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def image_rootfs_tar(version):
    """The root file system of lab/httpd:VERSION: busybox-static, a web root, uid 1000."""
    busybox = os.path.realpath("/bin/busybox")
    with open(busybox, "rb") as fh:
        binary = fh.read()
    applets = run([busybox, "--list"], capture=True).split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("www", 0o755),
            ("www/cgi-bin", 0o755),
        ):
            _tar_add(tar, d, mode=mode, kind=tarfile.DIRTYPE)
        _tar_add(tar, "home", mode=0o755, kind=tarfile.DIRTYPE)
        _tar_add(tar, "home/lab", mode=0o755, kind=tarfile.DIRTYPE, uid=IMAGE_UID)
        _tar_add(tar, "bin/busybox", binary, mode=0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox" and re.match(r"^[a-z0-9._\[-]+$", applet):
                _tar_add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _tar_add(
            tar,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n"
            f"lab:x:{IMAGE_UID}:{IMAGE_UID}:lab:/home/lab:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        _tar_add(tar, "etc/group", f"root:x:0:\nlab:x:{IMAGE_UID}:\nnogroup:x:65534:\n")
        _tar_add(
            tar,
            "www/index.html",
            f"<!doctype html>\n<title>lab httpd {version}</title>\n"
            f"<h1>webhosting.pods lab httpd, version {version}</h1>\n",
        )
        _tar_add(tar, "www/version", f"{version}\n")
        _tar_add(tar, "www/health", "ok\n")
        _tar_add(
            tar,
            "www/cgi-bin/env",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
            f"echo version={version}\necho uid=$(id -u)\necho hostname=$(hostname)\n"
            # the request as the pod sees it (headers arrive as HTTP_*): what a proxy
            # in front of the pod passed on, e.g. X-Forwarded-For or Upgrade
            "env | grep -E '^(HTTP_|REMOTE_ADDR=|REQUEST_METHOD=|REQUEST_URI=|"
            "SERVER_PROTOCOL=)' | sort\n",
            mode=0o755,
        )
    return buf.getvalue()


def containerfile(version):
    return (
        "FROM scratch\n"
        "ADD rootfs.tar /\n"
        f'LABEL org.opencontainers.image.title="webhosting.pods lab httpd" '
        f'org.opencontainers.image.version="{version}"\n'
        f"ENV PATH=/bin\n"
        f"USER {IMAGE_UID}:{IMAGE_UID}\n"
        "WORKDIR /www\n"
        f"EXPOSE {IMAGE_PORT}\n"
        # busybox httpd as PID 1 would ignore SIGTERM (stop = 10 s timeout + SIGKILL):
        # a shell that traps TERM makes the container stop at once, like a real app
        "# run as: busybox httpd -f -p 8080 -h /www (override CMD for other uses)\n"
        f'CMD ["/bin/sh", "-c", "trap \'exit 0\' TERM INT; '
        f'/bin/busybox httpd -f -p {IMAGE_PORT} -h /www & wait"]\n'
    )


def registry_tags(name, spid):
    password = read_text(os.path.join(host_dir(name), "registry-password"), "").strip()
    rc, out, _ = curl_in_host_net(
        spid,
        f"https://{REGISTRY_HOST}:{REGISTRY_PORT}/v2/{IMAGE_REPO}/tags/list",
        config=f'user = "{REGISTRY_USER}:{password}"\n',
        check=False,
    )
    if rc != 0:
        return set()
    try:
        return set(json.loads(out).get("tags") or [])
    except ValueError:
        return set()


def push_images(name, st, spid):
    """Build lab/httpd:1 and :2 inside the lab host (root podman) and push them."""
    if set(IMAGE_TAGS) <= registry_tags(name, spid):
        return
    t0 = time.monotonic()
    hd = host_dir(name)
    log = os.path.join(hd, "images.log")
    password = read_text(os.path.join(hd, "registry-password")).strip()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for tag in IMAGE_TAGS:
            _tar_add(tar, f"httpd-{tag}", mode=0o755, kind=tarfile.DIRTYPE)
            _tar_add(tar, f"httpd-{tag}/Containerfile", containerfile(tag))
            _tar_add(tar, f"httpd-{tag}/rootfs.tar", image_rootfs_tar(tag))
    inner = "/var/tmp/webhosting-pods-lab-images"
    host_run(spid, ["rm", "-rf", "--", inner], capture=True)
    host_run(spid, ["mkdir", "-p", "-m", "0700", inner], capture=True)
    host_run(
        spid,
        ["tar", "-x", "-C", inner, "-f", "-"],
        input=buf.getvalue(),
        capture=True,
        what="copying the image build contexts",
    )
    for tag in IMAGE_TAGS:
        host_run(
            spid,
            ["podman", "build", "--quiet", "-t", image_ref(tag), f"{inner}/httpd-{tag}"],
            log=log,
            what=f"podman build {image_ref(tag)}",
        )
    host_run(
        spid,
        [
            "podman",
            "login",
            "--username",
            REGISTRY_USER,
            "--password-stdin",
            f"{REGISTRY_HOST}:{REGISTRY_PORT}",
        ],
        input=password + "\n",
        capture=True,
        what="podman login (root, lab host)",
    )
    try:
        for tag in IMAGE_TAGS:
            host_run(
                spid,
                ["podman", "push", "--quiet", image_ref(tag)],
                log=log,
                what=f"podman push {image_ref(tag)}",
            )
    finally:
        host_run(
            spid,
            ["podman", "logout", f"{REGISTRY_HOST}:{REGISTRY_PORT}"],
            check=False,
            capture=True,
        )
        host_run(spid, ["rm", "-rf", "--", inner], check=False, capture=True)
    missing = set(IMAGE_TAGS) - registry_tags(name, spid)
    if missing:
        raise LabError(
            f"images {sorted(missing)} are not in the lab registry after the push; see {log}"
        )
    st.setdefault("timings_s", {})["images"] = round(time.monotonic() - t0, 1)
    save_state(name, st)
