"""Table-driven tests: one row per warning of the policy engine (a field ignored or a value
replaced), each asserting the exact line (``field.path: problem``); strict mode turns each
into an error.  Then whole pods: the valid base pod, all errors at once, printable lines."""

import pytest
from podspec_helpers import (
    C0,
    SC,
    make_hosting,
    outcome,
    patched,
    rule_table,
    shop_pod,
    shop_policy,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


# (id, changes to shop_pod(), changes to shop_policy(), the exact warning lines)
WARNINGS = [
    ("top-level", {"status": {"phase": "Running"}}, {}, ["status: ignored"]),
    (
        "annotations",
        {"metadata.annotations": {"io.podman.annotations.userns": "host"}},
        {},
        ["metadata.annotations: ignored"],
    ),
    ("namespace", {"metadata.namespace": "default"}, {}, ["metadata.namespace: ignored"]),
    (
        "metadata-name",
        {"metadata.name": "other"},
        {},
        ['metadata.name: "other" replaced by the hosting\'s pod name "shop"'],
    ),
    (
        "reserved-label",
        {"metadata.labels": {"io.containers.autoupdate": "registry", "app": "shop"}},
        {},
        [
            'metadata.labels["io.containers.autoupdate"]: ignored; io.podman. and io.containers. '
            "labels are reserved"
        ],
    ),
    (
        "initContainers",
        {"spec.initContainers": [{"name": "x"}]},
        {},
        ["spec.initContainers: ignored"],
    ),
    ("dnsPolicy", {"spec.dnsPolicy": "None"}, {}, ["spec.dnsPolicy: ignored"]),
    (
        "pod-fsGroup",
        {"spec.securityContext.fsGroup": 0},
        {},
        ["spec.securityContext.fsGroup: ignored"],
    ),
    (
        "resources",
        {C0 + ".resources": {"limits": {"memory": "64Gi"}}},
        {},
        [C0 + ".resources: ignored"],
    ),
    (
        "probe-grace",
        {C0 + ".livenessProbe": {"tcpSocket": {"port": 8080}, "terminationGracePeriodSeconds": 5}},
        {},
        [
            C0 + ".livenessProbe.terminationGracePeriodSeconds: ignored: a container stopped by"
            " a probe gets the host's stop timeout"
        ],
    ),
    ("tty", {C0 + ".tty": True}, {}, [C0 + ".tty: ignored"]),
    ("procMount", {SC + ".procMount": "Unmasked"}, {}, [SC + ".procMount: ignored"]),
    (
        "seccompProfile",
        {SC + ".seccompProfile": {"type": "Unconfined"}},
        {},
        [SC + ".seccompProfile: ignored"],
    ),
    (
        "capabilities-extra",
        {SC + ".capabilities.keep": ["X"]},
        {},
        [SC + ".capabilities.keep: ignored"],
    ),
    (
        "env-extra-key",
        {C0 + ".env": [{"name": "A", "value": "1", "x": 1}]},
        {},
        [C0 + ".env[0].x: ignored"],
    ),
    (
        "env-twice",
        {C0 + ".env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
        {},
        [C0 + '.env[1].name: "A" is set twice; the last value wins'],
    ),
    (
        "port-extra-key",
        {C0 + ".ports[0].appProtocol": "http"},
        {},
        [C0 + ".ports[0].appProtocol: ignored"],
    ),
    (
        "hostPort-not-exposed",
        {C0 + ".ports[0].hostPort": 8080},
        {},
        [C0 + ".ports[0].hostPort: 8080/tcp is not in the policy's exposed_ports; removed"],
    ),
    (
        "hostPort-exposed-other-protocol",
        {C0 + ".ports[1]": {"containerPort": 8443, "hostPort": 8443, "protocol": "UDP"}},
        {},
        [
            C0 + ".ports[1].hostPort: 8443/udp is not in the policy's exposed_ports; removed",
            C0 + ".ports[1]: 8443/UDP is neither a socket port nor an exposed port of the policy; "
            "reachable only inside the pod",
        ],
    ),
    (
        "hostIP-alone",
        {C0 + ".ports[0].hostIP": "127.0.0.1"},
        {},
        [C0 + ".ports[0].hostIP: ignored without an exposed hostPort"],
    ),
    (
        "other-port",
        {C0 + ".ports[1]": {"containerPort": 9090}},
        {},
        [
            C0 + ".ports[1]: 9090/TCP is neither a socket port nor an exposed port of the policy; "
            "reachable only inside the pod"
        ],
    ),
    (
        "volume-unused",
        {"spec.volumes[2]": {"name": "spare", "emptyDir": {"medium": "Memory"}}},
        {},
        ['spec.volumes[2]: volume "spare" is not mounted'],
    ),
    (
        "hostPath-extra",
        {"spec.volumes[0].hostPath.readOnly": True},
        {},
        ["spec.volumes[0].hostPath.readOnly: ignored"],
    ),
    (
        "emptyDir-extra",
        {"spec.volumes[1].emptyDir.size": "1G"},
        {},
        ["spec.volumes[1].emptyDir.size: ignored"],
    ),
    (
        "mountPropagation",
        {C0 + ".volumeMounts[0].mountPropagation": "Bidirectional"},
        {},
        [C0 + ".volumeMounts[0].mountPropagation: ignored"],
    ),
    (
        "gid-share",
        {SC + ".runAsGroup": 1000},
        {"volumes_containers_gid_share": True},
        [
            SC + ".runAsGroup: 1000 replaced by 0; the policy shares the hosting's group with "
            "containers that mount storage"
        ],
    ),
    (
        "gid-share-pod-level",
        {"spec.securityContext.runAsGroup": 2000},
        {"volumes_containers_gid_share": True, "volumes_containers_gid": 1000},
        [
            SC + ".runAsGroup: 2000 replaced by 1000; the policy shares the hosting's group with "
            "containers that mount storage"
        ],
    ),
]


@rule_table(WARNINGS)
def test_warning(base, pod_changes, policy_changes, expected):
    errors, warnings = outcome(
        patched(shop_pod(), pod_changes), shop_policy(base, **policy_changes)
    )
    assert errors == []
    assert warnings == expected


@rule_table(WARNINGS)
def test_strict_turns_each_warning_into_an_error(base, pod_changes, policy_changes, expected):
    errors, warnings = outcome(
        patched(shop_pod(), pod_changes), shop_policy(base, **policy_changes), strict=True
    )
    assert errors == expected
    assert warnings == expected


def test_the_base_pod_is_valid_without_warnings(base):
    assert outcome(shop_pod(), shop_policy(base)) == ([], [])


def test_every_error_is_reported_at_once(base):
    pod = patched(
        shop_pod(),
        {
            SC + ".runAsUser": 0,
            SC + ".privileged": True,
            "spec.hostNetwork": True,
            "spec.volumes[0].hostPath.path": "/data/link",
            C0 + ".image": "bad image",
        },
    )
    errors, _ = outcome(pod, shop_policy(base))
    assert errors == [
        "spec.hostNetwork: true is not allowed",
        "spec.volumes[0].hostPath.path: /data/link goes through the symlink /data/link; "
        "symlinks are not followed",
        C0 + '.image: "bad image" is not a valid image reference',
        SC + ".runAsUser: 0 (root) is not allowed",
        SC + ".privileged: true is not allowed; containers are never privileged",
    ]


def test_messages_are_single_printable_lines(base):
    pod = patched(
        shop_pod(),
        {
            "metadata.labels": {"a\nb\u2028c": "x"},
            C0 + ".image": "x\ny",
            "spec.volumes[0].hostPath.path": "/data/\x1b[31mred",
            "spec\u0085evil": 1,
        },
    )
    errors, warnings = outcome(pod, shop_policy(base))
    assert errors and warnings
    for line in errors + warnings:
        assert line.isprintable(), line
        assert len(line.splitlines()) == 1
