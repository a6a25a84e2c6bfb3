# SPDX-License-Identifier: GPL-3.0-or-later
"""Test images: lab/httpd:1 and :2, built on this machine and pushed to the host's registry."""

import gzip
import hashlib
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
from .hosts import host_dir, save_state
from .mounts import remove_tree
from .services import curl_in_host_net
from .util import LabError, read_text, run, write_file

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCTET_STREAM = "application/octet-stream"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"


def image_ref(tag):
    return f"{REGISTRY_HOST}:{REGISTRY_PORT}/{IMAGE_REPO}:{tag}"


def tar_add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=None, uid=0):
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
            tar_add(tar, d, mode=mode, kind=tarfile.DIRTYPE)
        tar_add(tar, "home", mode=0o755, kind=tarfile.DIRTYPE)
        tar_add(tar, "home/lab", mode=0o755, kind=tarfile.DIRTYPE, uid=IMAGE_UID)
        tar_add(tar, "bin/busybox", binary, mode=0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox" and re.match(r"^[a-z0-9._\[-]+$", applet):
                tar_add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        tar_add(
            tar,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n"
            f"lab:x:{IMAGE_UID}:{IMAGE_UID}:lab:/home/lab:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        tar_add(tar, "etc/group", f"root:x:0:\nlab:x:{IMAGE_UID}:\nnogroup:x:65534:\n")
        tar_add(
            tar,
            "www/index.html",
            f"<!doctype html>\n<title>lab httpd {version}</title>\n"
            f"<h1>webhosting.pods lab httpd, version {version}</h1>\n",
        )
        tar_add(tar, "www/version", f"{version}\n")
        tar_add(tar, "www/health", "ok\n")
        tar_add(
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


def image_arch():
    """The OCI architecture of this machine (the image's busybox is this machine's)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def image_config(version, diff_id):
    """The OCI image configuration of lab/httpd:VERSION (diff_id: of its one layer)."""
    return {
        "architecture": image_arch(),
        "os": "linux",
        "config": {
            "User": f"{IMAGE_UID}:{IMAGE_UID}",
            "Env": ["PATH=/bin"],
            "WorkingDir": "/www",
            "ExposedPorts": {f"{IMAGE_PORT}/tcp": {}},
            # busybox httpd as PID 1 would ignore SIGTERM (stop = 10 s timeout + SIGKILL):
            # a shell that traps TERM makes the container stop at once, like a real app.
            # Override the command for other uses.
            "Cmd": [
                "/bin/sh",
                "-c",
                f"trap 'exit 0' TERM INT; /bin/busybox httpd -f -p {IMAGE_PORT} -h /www & wait",
            ],
            "Labels": {
                "org.opencontainers.image.title": "webhosting.pods lab httpd",
                "org.opencontainers.image.version": str(version),
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_image(version):
    """lab/httpd:VERSION as OCI blobs: (manifest bytes, {digest: blob bytes}).

    Built here from this machine's busybox-static, so the lab host needs no podman before
    the roles install it; the same input gives the same digests.
    """
    layer_tar = image_rootfs_tar(version)
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(image_config(version, digest_of(layer_tar)), sort_keys=True).encode()
    return oci_manifest(config, [layer]), {digest_of(config): config, digest_of(layer): layer}


def oci_manifest(config, layers, sizes=None):
    """The OCI manifest (bytes) of an image: its config blob and its gzip layers, in order.
    A layer is given as its bytes, or as its digest with the size in ``sizes``."""
    sizes = sizes or {}

    def layer_entry(layer):
        if isinstance(layer, bytes):
            return {"mediaType": LAYER_MEDIA, "digest": digest_of(layer), "size": len(layer)}
        return {"mediaType": LAYER_MEDIA, "digest": layer, "size": sizes[layer]}

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [layer_entry(layer) for layer in layers],
    }
    return json.dumps(manifest, sort_keys=True).encode()


def _credentials(name):
    password = read_text(os.path.join(host_dir(name), "registry-password"), "").strip()
    return f'user = "{REGISTRY_USER}:{password}"\n'


def _v2(repo):
    return f"https://{REGISTRY_HOST}:{REGISTRY_PORT}/v2/{repo}"


def registry_tags(name, spid, repo=IMAGE_REPO):
    rc, out, _ = curl_in_host_net(
        spid, f"{_v2(repo)}/tags/list", config=_credentials(name), check=False
    )
    if rc != 0:
        return set()
    try:
        return set(json.loads(out).get("tags") or [])
    except ValueError:
        return set()


def _put(spid, url, credentials, path, content_type):
    """PUT the file ``path`` to the lab registry (a blob or a manifest), streamed."""
    curl_in_host_net(
        spid,
        url,
        config=credentials,
        args=["--max-time", "300", "-o", "/dev/null", "-H", f"Content-Type: {content_type}"]
        + ["-T", path],
    )


def _has_blob(spid, credentials, repo, digest):
    rc, out, _ = curl_in_host_net(
        spid,
        f"{_v2(repo)}/blobs/{digest}",
        config=credentials,
        check=False,
        args=["-I", "-o", "/dev/null", "-w", "%{http_code}"],
    )
    return rc == 0 and out.strip() == "200"


def push_image(name, spid, repo, tag, manifest, blobs):
    """Push one image to lab host NAME's registry, through its API with curl in the host's
    network namespace. blobs: {digest: bytes, or the path of a file}; a blob the
    repository has is not sent again. The manifest is always put (tag moves with it)."""
    credentials = _credentials(name)
    work = os.path.join(host_dir(name), "images")
    os.makedirs(work, mode=0o700, exist_ok=True)
    try:
        for digest, data in blobs.items():
            if _has_blob(spid, credentials, repo, digest):
                continue
            if isinstance(data, bytes):
                path = os.path.join(work, digest.replace(":", "-"))
                write_file(path, data, 0o600)
            else:
                path = data
            # a two-step upload: POST opens it, PUT with the digest completes it
            location = curl_in_host_net(
                spid,
                f"{_v2(repo)}/blobs/uploads/",
                config=credentials,
                args=["-X", "POST", "--data-binary", "", "-o", "/dev/null"]
                + ["-w", "%header{location}"],
            ).strip()
            if not location:
                raise LabError(f"the lab registry gave no upload location for {digest}")
            if location.startswith("/"):
                location = f"https://{REGISTRY_HOST}:{REGISTRY_PORT}{location}"
            sep = "&" if "?" in location else "?"
            _put(spid, f"{location}{sep}digest={digest}", credentials, path, OCTET_STREAM)
        path = os.path.join(work, f"manifest-{tag}.json")
        write_file(path, manifest, 0o600)
        _put(spid, f"{_v2(repo)}/manifests/{tag}", credentials, path, OCI_MANIFEST)
    finally:
        remove_tree(work)


def push_images(name, st, spid):
    """Build lab/httpd:1 and :2 here and push them into the host's registry."""
    if set(IMAGE_TAGS) <= registry_tags(name, spid):
        return
    t0 = time.monotonic()
    for tag in IMAGE_TAGS:
        manifest, blobs = oci_image(tag)
        push_image(name, spid, IMAGE_REPO, tag, manifest, blobs)
    missing = set(IMAGE_TAGS) - registry_tags(name, spid)
    if missing:
        raise LabError(f"images {sorted(missing)} are not in the lab registry after the push")
    st.setdefault("timings_s", {})["images"] = round(time.monotonic() - t0, 1)
    save_state(name, st)
