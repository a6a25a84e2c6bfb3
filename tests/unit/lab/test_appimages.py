"""The application images (labkit/appimages.py): the small top layer made from
lab/appimage/rootfs, the manifest over the cached base layer, and the cache's key. The
base layer itself (debootstrap + apt from Debian's mirror) is built and used by the apps
molecule scenario, not here."""

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

from labkit import appimages, images


def _base(lab):
    """A stand-in cached base layer: a real gzip of a real (tiny) tar, as the build writes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/debian_version")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"12\n"))
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    directory = appimages.base_dir()
    os.makedirs(directory)
    with open(os.path.join(directory, "layer.tar.gz"), "wb") as fh:
        fh.write(layer)
    info = {
        "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest(),
        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
        "size": len(layer),
    }
    with open(os.path.join(directory, "info.json"), "w") as fh:
        json.dump(info, fh)
    return info


def test_the_top_layer_holds_the_checkout_files_with_their_modes_and_the_version():
    layer = appimages.app_layer_tar("2")
    assert appimages.app_layer_tar("2") == layer  # the same digest every time
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("etc/app/version").read() == b"2\n"
        for name in ("usr/local/bin/app-db", "usr/local/bin/app-multi", "srv/notes/index.php"):
            assert name in members, name
            source = os.path.join(appimages.APP_LAYER_DIR, name)
            with open(source, "rb") as fh:
                assert tar.extractfile(name).read() == fh.read()
        # entry points executable, the rest not; all root's, nothing writable by others
        assert members["usr/local/bin/app-db"].mode == 0o755
        assert members["etc/app/nginx.conf"].mode == 0o644
        assert members["run/app"].isdir()
        assert all(m.uid == 0 and m.gid == 0 and not m.mode & 0o022 for m in members.values())
    assert appimages.app_layer_tar("1") != layer


def test_the_entry_points_are_executable_in_the_checkout():
    for name in ("app-db", "app-adminer", "app-multi", "app-worker"):
        mode = os.stat(os.path.join(appimages.APP_LAYER_DIR, "usr/local/bin", name)).st_mode
        assert mode & stat.S_IXUSR, name


def test_the_manifest_names_the_cached_base_layer_and_every_blob(lab):
    base = _base(lab)
    assert appimages.base_info() == base
    manifest, blobs = appimages.app_image(
        base, "lab/php-pg", "1", "/usr/local/bin/app-adminer", "t"
    )
    doc = json.loads(manifest)
    layers = doc["layers"]
    assert layers[0] == {
        "mediaType": images.LAYER_MEDIA,
        "digest": base["digest"],
        "size": base["size"],
    }
    # the base layer is sent from the cache file, the others from memory
    assert blobs[base["digest"]] == os.path.join(appimages.base_dir(), "layer.tar.gz")
    for entry in [doc["config"], layers[1]]:
        data = blobs[entry["digest"]]
        assert len(data) == entry["size"]
        assert entry["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    config = json.loads(blobs[doc["config"]["digest"]])
    top = gzip.decompress(blobs[layers[1]["digest"]])
    assert config["rootfs"]["diff_ids"] == [
        base["diff_id"],
        "sha256:" + hashlib.sha256(top).hexdigest(),
    ]
    assert config["config"]["Cmd"] == ["/usr/local/bin/app-adminer"]
    assert config["config"]["User"] == "1000:1000"


def test_the_cache_key_follows_the_recipe(lab, monkeypatch):
    before = appimages.base_dir()
    assert os.path.basename(before).startswith("appbase-")
    monkeypatch.setitem(appimages.APP_RECIPE, "packages", [*appimages.APP_RECIPE["packages"], "x"])
    assert appimages.base_dir() != before
    # an incomplete cache entry (no marker) is not taken for a built one
    os.makedirs(appimages.base_dir())
    assert appimages.base_info() is None


def test_every_image_has_tags_and_an_entry_point_of_the_layer():
    refs = appimages.app_image_refs()
    assert "registry.example.test:5000/lab/php-pg:2" in refs
    assert "registry.example.test:5000/lab/multi:1" in refs
    for _, tags, entry, _ in appimages.APP_IMAGES:
        assert tags
        assert os.path.isfile(os.path.join(appimages.APP_LAYER_DIR, entry.lstrip("/")))
