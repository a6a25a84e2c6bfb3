"""Table-driven tests: one row per rule of the policy engine, each asserting the exact
error line (``field.path: problem``): spec.volumes (hostPath below the hosting, no symlink
followed; emptyDir in memory) and the containers' volumeMounts."""

import pytest
from podspec_helpers import (
    C0,
    DELETE,
    NAME_RULE,
    make_hosting,
    outcome,
    patched,
    rule_table,
    shop_pod,
    shop_policy,
)

VOLUME_TYPES = (
    "volume type not allowed; use hostPath (type: Directory) or emptyDir (medium: Memory)"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


# (id, changes to shop_pod(), changes to shop_policy(), the exact error lines)
ERRORS = [
    # -- volumes -------------------------------------------------------------------------
    (
        "volumes-type",
        {"spec.volumes": {"www": "/data/www"}},
        {},
        [
            "spec.volumes: must be a list, got a mapping",
            C0 + '.volumeMounts[0].name: no volume named "www" in spec.volumes',
            C0 + '.volumeMounts[1].name: no volume named "tmp" in spec.volumes',
        ],
    ),
    (
        "volume-type",
        {"spec.volumes[2]": "extra"},
        {},
        ["spec.volumes[2]: must be a mapping, got a string"],
    ),
    (
        "volume-name-missing",
        {"spec.volumes[2]": {"emptyDir": {"medium": "Memory"}}},
        {},
        ["spec.volumes[2].name: required"],
    ),
    (
        "volume-name-invalid",
        {"spec.volumes[2]": {"name": "Extra", "emptyDir": {"medium": "Memory"}}},
        {},
        ['spec.volumes[2].name: "Extra" ' + NAME_RULE],
    ),
    (
        "volume-name-duplicate",
        {"spec.volumes[2]": {"name": "www", "emptyDir": {"medium": "Memory"}}},
        {},
        ['spec.volumes[2].name: "www" is used by another volume'],
    ),
    (
        "volume-configMap",
        {"spec.volumes[1]": {"name": "tmp", "configMap": {"name": "x"}}},
        {},
        ["spec.volumes[1].configMap: " + VOLUME_TYPES],
    ),
    (
        "volume-pvc",
        {"spec.volumes[1]": {"name": "tmp", "persistentVolumeClaim": {"claimName": "x"}}},
        {},
        ["spec.volumes[1].persistentVolumeClaim: " + VOLUME_TYPES],
    ),
    (
        "volume-both",
        {"spec.volumes[1].hostPath": {"path": "/data/app", "type": "Directory"}},
        {},
        ['spec.volumes[1]: volume "tmp" has both hostPath and emptyDir; use one'],
    ),
    (
        "volume-none",
        {"spec.volumes[1]": {"name": "tmp"}},
        {},
        ['spec.volumes[1]: volume "tmp" needs hostPath or emptyDir'],
    ),
    (
        "hostPath-type-missing",
        {"spec.volumes[0].hostPath.type": DELETE},
        {},
        ["spec.volumes[0].hostPath.type: required, must be Directory"],
    ),
    (
        "hostPath-type-File",
        {"spec.volumes[0].hostPath.type": "File"},
        {},
        ['spec.volumes[0].hostPath.type: must be Directory, got "File"'],
    ),
    (
        "hostPath-type-DirectoryOrCreate",
        {"spec.volumes[0].hostPath.type": "DirectoryOrCreate"},
        {},
        ['spec.volumes[0].hostPath.type: must be Directory, got "DirectoryOrCreate"'],
    ),
    (
        "hostPath-not-mapping",
        {"spec.volumes[0].hostPath": "/data/www"},
        {},
        ["spec.volumes[0].hostPath: must be a mapping, got a string"],
    ),
    (
        "hostPath-path-missing",
        {"spec.volumes[0].hostPath.path": DELETE},
        {},
        ["spec.volumes[0].hostPath.path: required"],
    ),
    (
        "hostPath-missing-dir",
        {"spec.volumes[0].hostPath.path": "/data/x"},
        {},
        ["spec.volumes[0].hostPath.path: /data/x does not exist in the hosting"],
    ),
    (
        "hostPath-file",
        {"spec.volumes[0].hostPath.path": "/data/file"},
        {},
        ["spec.volumes[0].hostPath.path: /data/file is not a directory"],
    ),
    (
        "hostPath-below-file",
        {"spec.volumes[0].hostPath.path": "/data/file/x"},
        {},
        ["spec.volumes[0].hostPath.path: /data/file/x: /data/file is not a directory"],
    ),
    (
        "hostPath-dotdot",
        {"spec.volumes[0].hostPath.path": "/data/../../etc"},
        {},
        ['spec.volumes[0].hostPath.path: "/data/../../etc" must not contain ".."'],
    ),
    (
        "hostPath-symlink-out",
        {"spec.volumes[0].hostPath.path": "/data/link"},
        {},
        [
            "spec.volumes[0].hostPath.path: /data/link goes through the symlink /data/link; "
            "symlinks are not followed"
        ],
    ),
    (
        "hostPath-below-symlink",
        {"spec.volumes[0].hostPath.path": "/data/up/etc"},
        {},
        [
            "spec.volumes[0].hostPath.path: /data/up/etc goes through the symlink /data/up; "
            "symlinks are not followed"
        ],
    ),
    (
        "hostPath-symlink-inside",
        {"spec.volumes[0].hostPath.path": "data/inlink/html"},
        {},
        [
            "spec.volumes[0].hostPath.path: /data/inlink/html goes through the symlink "
            "/data/inlink; symlinks are not followed"
        ],
    ),
    (
        "hostPath-nul",
        {"spec.volumes[0].hostPath.path": "/data/www\x00"},
        {},
        ["spec.volumes[0].hostPath.path: must not contain a NUL character"],
    ),
    (
        "emptyDir-disk",
        {"spec.volumes[1].emptyDir": {}},
        {},
        [
            "spec.volumes[1].emptyDir.medium: must be Memory (a tmpfs); disk-backed emptyDir is "
            "not supported"
        ],
    ),
    (
        "emptyDir-sizeLimit",
        {"spec.volumes[1].emptyDir.sizeLimit": "lots"},
        {},
        ['spec.volumes[1].emptyDir.sizeLimit: "lots" is not a size (e.g. 64Mi)'],
    ),
    (
        "systemd-reserved-volume",
        {"spec.volumes[1].name": "systemd-0-run", C0 + ".volumeMounts[1].name": "systemd-0-run"},
        {"containers": {"web": {"systemd": True}}},
        ['spec.volumes[1].name: "systemd-0-run" is reserved for the systemd mode of the container'],
    ),
    # -- volumeMounts --------------------------------------------------------------------
    (
        "mount-unknown-volume",
        {C0 + ".volumeMounts[0].name": "nope"},
        {},
        [C0 + '.volumeMounts[0].name: no volume named "nope" in spec.volumes'],
    ),
    (
        "mount-name-missing",
        {C0 + ".volumeMounts[0].name": DELETE},
        {},
        [C0 + ".volumeMounts[0].name: required"],
    ),
    (
        "mountPath-missing",
        {C0 + ".volumeMounts[0].mountPath": DELETE},
        {},
        [C0 + ".volumeMounts[0].mountPath: required"],
    ),
    (
        "mountPath-relative",
        {C0 + ".volumeMounts[0].mountPath": "var/www"},
        {},
        [C0 + '.volumeMounts[0].mountPath: "var/www" must be an absolute path'],
    ),
    (
        "mountPath-colon",
        {C0 + ".volumeMounts[0].mountPath": "/var/www:rw"},
        {},
        [C0 + ".volumeMounts[0].mountPath: must not contain ':'"],
    ),
    (
        "mountPath-twice",
        {C0 + ".volumeMounts[1].mountPath": "/var/www"},
        {},
        [C0 + '.volumeMounts[1].mountPath: "/var/www" is already mounted by volumeMounts[0]'],
    ),
    (
        "mountPath-twice-trailing-slash",
        {C0 + ".volumeMounts[1].mountPath": "/var/www/"},
        {},
        [
            C0 + '.volumeMounts[1].mountPath: "/var/www/" is /var/www, already mounted by '
            "volumeMounts[0]"
        ],
    ),
    (
        "mountPath-twice-spelt-differently",
        {
            C0 + ".volumeMounts[0].mountPath": "//srv",
            C0 + ".volumeMounts[1].mountPath": "/srv/./x/../",
        },
        {},
        [
            C0 + '.volumeMounts[1].mountPath: "/srv/./x/../" is /srv, already mounted by '
            "volumeMounts[0]"
        ],
    ),
    (
        "mountPath-root",
        {C0 + ".volumeMounts[0].mountPath": "/"},
        {},
        [C0 + '.volumeMounts[0].mountPath: "/" is /, which a pod may not mount over'],
    ),
    (
        "mountPath-root-spelt-with-dots",
        {C0 + ".volumeMounts[0].mountPath": "/var/../..//."},
        {},
        [C0 + '.volumeMounts[0].mountPath: "/var/../..//." is /, which a pod may not mount over'],
    ),
    (
        "mountPath-proc",
        {C0 + ".volumeMounts[1].mountPath": "/proc/../proc"},
        {},
        [
            C0 + '.volumeMounts[1].mountPath: "/proc/../proc" is /proc, which a pod may not '
            "mount over"
        ],
    ),
    (
        "mountPath-below-proc",
        {C0 + ".volumeMounts[0].mountPath": "/proc/sys/kernel"},
        {},
        [
            C0 + '.volumeMounts[0].mountPath: "/proc/sys/kernel" is under /proc, which a pod may '
            "not mount over"
        ],
    ),
    (
        "mountPath-sys-double-slash",
        {C0 + ".volumeMounts[0].mountPath": "//sys"},
        {},
        [C0 + '.volumeMounts[0].mountPath: "//sys" is /sys, which a pod may not mount over'],
    ),
    (
        "mountPath-below-sys",
        {C0 + ".volumeMounts[0].mountPath": "/./sys/fs/cgroup/"},
        {},
        [
            C0 + '.volumeMounts[0].mountPath: "/./sys/fs/cgroup/" is under /sys, which a pod may '
            "not mount over"
        ],
    ),
    (
        "mountPath-dev",
        {C0 + ".volumeMounts[1].mountPath": "/dev/"},
        {},
        [C0 + '.volumeMounts[1].mountPath: "/dev/" is /dev, which a pod may not mount over'],
    ),
    (
        "mountPath-dev-escaping-the-root",
        {C0 + ".volumeMounts[1].mountPath": "/../../dev/null"},
        {},
        [
            C0 + '.volumeMounts[1].mountPath: "/../../dev/null" is under /dev, which a pod may '
            "not mount over"
        ],
    ),
    (
        "mountPath-dev-shm-hostPath",
        {C0 + ".volumeMounts[0].mountPath": "/dev/shm"},
        {},
        [
            C0 + '.volumeMounts[0].mountPath: "/dev/shm" is /dev/shm, where only an emptyDir with '
            "medium Memory may be mounted"
        ],
    ),
    (
        "mountPath-below-dev-shm",
        {C0 + ".volumeMounts[1].mountPath": "/dev/shm/x"},
        {},
        [
            C0 + '.volumeMounts[1].mountPath: "/dev/shm/x" is under /dev, which a pod may not '
            "mount over"
        ],
    ),
    (
        "mountPath-colon-after-normalising",
        {C0 + ".volumeMounts[0].mountPath": "/a:b/."},
        {},
        [C0 + ".volumeMounts[0].mountPath: must not contain ':'"],
    ),
    (
        "mountPath-relative-dotdot",
        {C0 + ".volumeMounts[0].mountPath": "../proc"},
        {},
        [C0 + '.volumeMounts[0].mountPath: "../proc" must be an absolute path'],
    ),
    (
        "mountPath-multiline",
        {C0 + ".volumeMounts[0].mountPath": "/srv\n/proc"},
        {},
        [C0 + ".volumeMounts[0].mountPath: must be a single line"],
    ),
    (
        "mount-subPath",
        {C0 + ".volumeMounts[0].subPath": "../.."},
        {},
        [C0 + ".volumeMounts[0].subPath: not supported; mount a volume for the directory"],
    ),
    (
        "mount-readOnly-type",
        {C0 + ".volumeMounts[0].readOnly": "yes"},
        {},
        [C0 + '.volumeMounts[0].readOnly: must be true or false, got "yes"'],
    ),
]


@rule_table(ERRORS)
def test_error(base, pod_changes, policy_changes, expected):
    errors, _warnings = outcome(
        patched(shop_pod(), pod_changes), shop_policy(base, **policy_changes)
    )
    assert errors == expected
