# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostPath pinning (pod_policy.pinning): the pure parts directly, the mounts for real in a
user and mount namespace of their own (unshare -Urm), as `podman unshare` runs them."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import pod_policy
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import pinning

ENGINE_DIR = os.path.dirname(os.path.dirname(pod_policy.__file__))


def pod(*volumes):
    return {"apiVersion": "v1", "kind": "Pod", "spec": {"volumes": list(volumes)}}


def test_host_path_volumes_relative_to_the_base():
    rendered = pod(
        {"name": "www", "hostPath": {"path": "/srv/h/shop/www", "type": "Directory"}},
        {"name": "mem", "persistentVolumeClaim": {"claimName": "shop-memory-mem"}},
        {"name": "all", "hostPath": {"path": "/srv/h/shop", "type": "Directory"}},
        {"name": "deep", "hostPath": {"path": "/srv/h/shop/data/a/b", "type": "Directory"}},
    )
    assert pinning.host_path_volumes(rendered, "/srv/h/shop") == [
        ("www", "www"),
        ("all", ""),
        ("deep", "data/a/b"),
    ]
    assert pinning.host_path_volumes(pod(), "/srv/h/shop") == []


@pytest.mark.parametrize("path", ["/srv/h/shopping/www", "/srv/h", "/etc"])
def test_host_path_outside_the_base_is_refused(path):
    with pytest.raises(pinning.PinError, match="is not below /srv/h/shop"):
        pinning.host_path_volumes(pod({"name": "x", "hostPath": {"path": path}}), "/srv/h/shop")


def test_pinned_pod_points_at_the_staging_and_leaves_the_input_alone():
    rendered = pod(
        {"name": "www", "hostPath": {"path": "/srv/h/shop/www", "type": "Directory"}},
        {"name": "mem", "persistentVolumeClaim": {"claimName": "shop-memory-mem"}},
    )
    before = json.dumps(rendered, sort_keys=True)
    pinned = pinning.pinned_pod(rendered, "/state/pod.mounts", [("www", "www")])
    assert pinned["spec"]["volumes"][0]["hostPath"] == {
        "path": "/state/pod.mounts/www",
        "type": "Directory",
    }
    assert pinned["spec"]["volumes"][1] == rendered["spec"]["volumes"][1]
    assert json.dumps(rendered, sort_keys=True) == before


# What runs inside the namespace: pin, then report what the staging mounts really are
# (device and inode), after the tenant's swap when one is asked for.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    from pod_policy import pinning
    base, staging, swap = sys.argv[2], sys.argv[3], sys.argv[4]
    volumes = json.loads(sys.argv[5])
    rounds = int(sys.argv[6])
    out = {}
    try:
        for _ in range(rounds):
            pinning.pin(base, staging, volumes)
    except pinning.PinError as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(0)
    if swap:
        os.rename(os.path.join(base, swap), os.path.join(base, swap + ".old"))
        os.symlink("/", os.path.join(base, swap))
    for name, _rel in volumes:
        st = os.stat(os.path.join(staging, name))
        out[name] = [st.st_dev, st.st_ino, sorted(os.listdir(os.path.join(staging, name)))]
    with open("/proc/self/mountinfo") as handle:
        lines = [line.split() for line in handle if line.split()[4] == staging]
    out["stacked"] = len(lines)
    # the staging tmpfs as the kernel has it: per-mount options, then its super options
    out["options"] = [lines[-1][5], lines[-1][-1]] if lines else None
    print(json.dumps(out))
    """
)


def missing(reason):
    """Skip on a developer's machine without it; fail in CI, which has it (issue 33: a
    skipped guard test passes vacuously)."""
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run this test)")
    pytest.skip(reason)


def run_pinned(tmp_path, volumes, swap="", rounds=1):
    if not shutil.which("unshare"):
        missing("no unshare(1) here")
    staging = tmp_path / "pod.mounts"
    staging.mkdir(exist_ok=True)
    argv = ["unshare", "--user", "--map-root-user", "--mount", "--", sys.executable, "-c"]
    argv += [SCRIPT, ENGINE_DIR, str(tmp_path / "hosting"), str(staging), swap]
    argv += [json.dumps(volumes), str(rounds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        missing("user namespaces are not available here: %s" % done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def hosting(tmp_path):
    base = tmp_path / "hosting"
    (base / "data" / "x").mkdir(parents=True)
    (base / "data" / "x" / "marker").write_text("checked\n")
    (base / "www").mkdir()
    return base


def test_pinned_mount_is_the_checked_directory_even_after_a_swap(tmp_path, hosting):
    checked = os.stat(hosting / "data" / "x")
    seen = run_pinned(tmp_path, [["x", "data/x"], ["root", ""]], swap="data/x")
    assert seen["x"][:2] == [checked.st_dev, checked.st_ino]
    assert seen["x"][2] == ["marker"]
    assert seen["root"][:2] == [os.stat(hosting).st_dev, os.stat(hosting).st_ino]
    # nothing was mounted outside the staging tmpfs in the caller's namespace
    assert not os.path.ismount(tmp_path / "pod.mounts")


@pytest.mark.parametrize(
    "link_at, relative",
    [("data/x", "data/x"), ("data", "data/x"), ("www", "www")],
)
def test_symlink_on_the_way_is_refused(tmp_path, hosting, link_at, relative):
    target = hosting / link_at
    os.rename(target, str(target) + ".moved")
    os.symlink("/", target)
    seen = run_pinned(tmp_path, [["v", relative]])
    assert "symlink or not a directory" in seen["error"]
    assert "/%s" % link_at in seen["error"]


def test_file_instead_of_directory_is_refused(tmp_path, hosting):
    (hosting / "www").rmdir()
    (hosting / "www").write_text("")
    seen = run_pinned(tmp_path, [["v", "www"]])
    assert "symlink or not a directory" in seen["error"]


def test_missing_directory_is_refused(tmp_path, hosting):
    seen = run_pinned(tmp_path, [["v", "data/nope"]])
    assert seen["error"].startswith("/data/nope: /data/nope:")


def test_every_start_replaces_the_staging_instead_of_stacking(tmp_path, hosting):
    seen = run_pinned(tmp_path, [["x", "data/x"]], rounds=3)
    assert seen["stacked"] == 1
    assert seen["x"][2] == ["marker"]


def test_podman_is_given_no_engine_annotation_and_no_restart_policy_when_supervised():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "shop",
            "annotations": {
                pod_policy.MEMORY_VOLUMES_ANNOTATION: "shop-memory-cache=67108864",
                "webhosting.pods/probes": '{"web": {"liveness": {"tcp": 8080}}}' * 3,
            },
        },
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "web"}]},
    }
    given = pod_policy.podman_pod(pod)
    assert "annotations" not in given["metadata"]  # podman 4.3 refuses values over 63 chars
    assert given["spec"]["restartPolicy"] == "OnFailure"
    supervised = pod_policy.podman_pod(pod, supervised=True)
    assert supervised["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["restartPolicy"] == "OnFailure"  # the rendered pod is untouched
    assert len(pod["metadata"]["annotations"]) == 2
    plain = {"metadata": {"name": "shop"}, "spec": {"containers": []}}
    assert pod_policy.podman_pod(plain) is plain  # nothing to change: the same object


def test_the_staging_tmpfs_is_nosuid_nodev_noexec_and_private(tmp_path, hosting):
    seen = run_pinned(tmp_path, [["x", "data/x"]])
    per_mount, super_options = seen["options"]
    assert {"nosuid", "nodev", "noexec"} <= set(per_mount.split(",")), per_mount
    assert "mode=700" in super_options.split(","), super_options


@pytest.mark.parametrize("relative", ["data/../..", "..", "data/..", "./data"])
def test_open_beneath_refuses_dot_and_dot_dot(hosting, relative):
    base_fd = os.open(hosting, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(pinning.PinError, match="is not allowed"):
            pinning._open_beneath(base_fd, relative)
    finally:
        os.close(base_fd)
