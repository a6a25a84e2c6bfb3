"""Table-driven tests: one row per rule of the policy engine, each asserting the exact
error line (``field.path: problem``): the document, the pod and its containers (image,
command, env, ports, securityContext).  Volumes and mounts: test_pod_policy_rules_volumes.py;
warnings: test_pod_policy_rules_warnings.py."""

import pytest
from podspec_helpers import (
    C0,
    DELETE,
    NAME_RULE,
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


def second_container(**changes):
    container = {"name": "worker", "image": "quay.io/shop/worker:2"}
    container.update(changes)
    return container


# (id, changes to shop_pod(), changes to shop_policy(), the exact error lines)
ERRORS = [
    # -- document ------------------------------------------------------------------------
    ("apiVersion-missing", {"apiVersion": DELETE}, {}, ["apiVersion: required, must be v1"]),
    ("apiVersion-wrong", {"apiVersion": "apps/v1"}, {}, ['apiVersion: must be v1, got "apps/v1"']),
    ("kind-missing", {"kind": DELETE}, {}, ["kind: required, must be Pod"]),
    ("kind-wrong", {"kind": "Deployment"}, {}, ['kind: must be Pod, got "Deployment"']),
    ("spec-missing", {"spec": DELETE}, {}, ["spec: required"]),
    ("spec-not-mapping", {"spec": ["x"]}, {}, ["spec: must be a mapping, got a list"]),
    (
        "metadata-not-mapping",
        {"metadata": "shop"},
        {},
        ["metadata: must be a mapping, got a string"],
    ),
    (
        "label-key",
        {"metadata.labels": {"bad key": "x"}},
        {},
        ['metadata.labels["bad key"]: "bad key" is not a valid label key'],
    ),
    (
        "label-value",
        {"metadata.labels": {"app": "no spaces"}},
        {},
        ['metadata.labels.app: "no spaces" is not a valid label value'],
    ),
    (
        "label-value-type",
        {"metadata.labels": {"app": 1}},
        {},
        ['metadata.labels.app: must be a string, got an integer (quote it: "1")'],
    ),
    # -- pod-level fields ----------------------------------------------------------------
    ("hostNetwork", {"spec.hostNetwork": True}, {}, ["spec.hostNetwork: true is not allowed"]),
    ("hostPID", {"spec.hostPID": True}, {}, ["spec.hostPID: true is not allowed"]),
    ("hostIPC", {"spec.hostIPC": True}, {}, ["spec.hostIPC: true is not allowed"]),
    (
        "hostNetwork-type",
        {"spec.hostNetwork": "yes"},
        {},
        ['spec.hostNetwork: must be true or false, got "yes"'],
    ),
    ("hostname", {"spec.hostname": "Bad_Name"}, {}, ['spec.hostname: "Bad_Name" ' + NAME_RULE]),
    (
        "restartPolicy",
        {"spec.restartPolicy": "Sometimes"},
        {},
        ['spec.restartPolicy: must be one of Always, OnFailure, Never, got "Sometimes"'],
    ),
    (
        "pod-securityContext-type",
        {"spec.securityContext": "root"},
        {},
        ["spec.securityContext: must be a mapping, got a string"],
    ),
    (
        "pod-runAsUser-0",
        {"spec.securityContext.runAsUser": 0},
        {},
        ["spec.securityContext.runAsUser: 0 (root) is not allowed"],
    ),
    (
        "pod-runAsGroup-0",
        {"spec.securityContext.runAsGroup": 0},
        {},
        ["spec.securityContext.runAsGroup: 0 (root's group) is not allowed"],
    ),
    (
        "pod-runAsNonRoot-false",
        {"spec.securityContext.runAsNonRoot": False},
        {},
        ["spec.securityContext.runAsNonRoot: false is not allowed; containers never run as root"],
    ),
    (
        "pod-seLinuxOptions",
        {"spec.securityContext.seLinuxOptions": {"type": "spc_t"}},
        {},
        ["spec.securityContext.seLinuxOptions: not allowed; SELinux labels are set by the host"],
    ),
    (
        "pod-runAsUser-0-no-default",
        {"spec.securityContext.runAsUser": 0},
        {"default_run_as_user": DELETE},
        ["spec.securityContext.runAsUser: 0 (root) is not allowed"],
    ),
    # -- containers ----------------------------------------------------------------------
    (
        "containers-missing",
        {"spec.containers": DELETE},
        {},
        ["spec.containers: required, at least one container"],
    ),
    (
        "containers-empty",
        {"spec.containers": []},
        {},
        ["spec.containers: required, at least one container"],
    ),
    (
        "containers-type",
        {"spec.containers": {"name": "web"}},
        {},
        ["spec.containers: must be a list, got a mapping"],
    ),
    (
        "max-containers",
        {"spec.containers[1]": second_container()},
        {"max_containers": 1},
        ["spec.containers: 2 containers; the policy allows at most 1"],
    ),
    (
        "container-type",
        {"spec.containers[1]": "worker"},
        {},
        ["spec.containers[1]: must be a mapping, got a string"],
    ),
    ("name-missing", {C0 + ".name": DELETE}, {}, [C0 + ".name: required"]),
    ("name-invalid", {C0 + ".name": "Web"}, {}, [C0 + '.name: "Web" ' + NAME_RULE]),
    (
        "name-too-long",
        {C0 + ".name": "w" * 64},
        {},
        [C0 + '.name: "' + "w" * 60 + '..." ' + NAME_RULE],
    ),
    (
        "name-duplicate",
        {"spec.containers[1]": second_container(name="web")},
        {},
        ['spec.containers[1].name: "web" is used by another container'],
    ),
    ("image-missing", {C0 + ".image": DELETE}, {}, [C0 + ".image: required"]),
    (
        "image-invalid",
        {C0 + ".image": "nginx latest"},
        {},
        [C0 + '.image: "nginx latest" is not a valid image reference'],
    ),
    (
        "image-uppercase-path",
        {C0 + ".image": "quay.io/Shop/web"},
        {},
        [C0 + '.image: "quay.io/Shop/web" is not a valid image reference'],
    ),
    (
        "image-digest-short",
        {C0 + ".image": "nginx@sha256:abc"},
        {},
        [
            C0 + '.image: "nginx@sha256:abc" is not a valid image reference: a sha256 digest is '
            "exactly 64 lowercase hex digits, got 3"
        ],
    ),
    (
        "image-digest-sha256-long",
        {C0 + ".image": "nginx@sha256:" + "a" * 65},
        {},
        [
            C0 + '.image: "nginx@sha256:' + "a" * 47 + '..." is not a valid image reference: a '
            "sha256 digest is exactly 64 lowercase hex digits, got 65"
        ],
    ),
    (
        "image-digest-sha256-as-long-as-sha512",
        {C0 + ".image": "nginx@sha256:" + "a" * 128},
        {},
        [
            C0 + '.image: "nginx@sha256:' + "a" * 47 + '..." is not a valid image reference: a '
            "sha256 digest is exactly 64 lowercase hex digits, got 128"
        ],
    ),
    (
        "image-digest-sha512-short",
        {C0 + ".image": "quay.io/shop/web:1@sha512:" + "b" * 64},
        {},
        [
            C0 + '.image: "quay.io/shop/web:1@sha512:' + "b" * 34 + '..." is not a valid image '
            "reference: a sha512 digest is exactly 128 lowercase hex digits, got 64"
        ],
    ),
    (
        "image-digest-uppercase",
        {C0 + ".image": "nginx@sha256:" + "A" * 64},
        {},
        [
            C0 + '.image: "nginx@sha256:' + "A" * 47 + '..." is not a valid image reference: a '
            'sha256 digest is exactly 64 lowercase hex digits; "A" is not one'
        ],
    ),
    (
        "image-digest-not-hex",
        {C0 + ".image": "nginx@sha256:" + "g" * 64},
        {},
        [
            C0 + '.image: "nginx@sha256:' + "g" * 47 + '..." is not a valid image reference: a '
            'sha256 digest is exactly 64 lowercase hex digits; "g" is not one'
        ],
    ),
    (
        "image-digest-algorithm",
        {C0 + ".image": "nginx@md5:" + "c" * 32},
        {},
        [
            C0 + '.image: "nginx@md5:' + "c" * 32 + '" is not a valid image reference: the digest '
            'algorithm "md5" is not sha256 or sha512'
        ],
    ),
    (
        "image-digest-unregistered-algorithm",
        {C0 + ".image": "nginx@sha384:" + "d" * 96},
        {},
        [
            C0 + '.image: "nginx@sha384:' + "d" * 47 + '..." is not a valid image reference: the '
            'digest algorithm "sha384" is not sha256 or sha512'
        ],
    ),
    (
        "image-digest-uppercase-algorithm",
        {C0 + ".image": "nginx@SHA256:" + "e" * 64},
        {},
        [C0 + '.image: "nginx@SHA256:' + "e" * 47 + '..." is not a valid image reference'],
    ),
    (
        "image-digest-empty",
        {C0 + ".image": "nginx@sha256:"},
        {},
        [C0 + '.image: "nginx@sha256:" is not a valid image reference'],
    ),
    (
        "image-type",
        {C0 + ".image": 5},
        {},
        [C0 + '.image: must be a string, got an integer (quote it: "5")'],
    ),
    (
        "image-registry",
        {C0 + ".image": "evil.example/x:1"},
        {"allowed_registries": ["docker.io/library", "quay.io/shop"]},
        [
            C0 + '.image: "evil.example/x:1" is not from an allowed registry '
            "(docker.io/library, quay.io/shop)"
        ],
    ),
    (
        "image-registry-prefix-is-a-path",
        {C0 + ".image": "quay.io/shopping/web"},
        {"allowed_registries": ["quay.io/shop"]},
        [C0 + '.image: "quay.io/shopping/web" is not from an allowed registry (quay.io/shop)'],
    ),
    (
        "imagePullPolicy",
        {C0 + ".imagePullPolicy": "Sometimes"},
        {},
        [C0 + '.imagePullPolicy: must be one of Always, IfNotPresent, Never, got "Sometimes"'],
    ),
    (
        "command-type",
        {C0 + ".command": "nginx -g"},
        {},
        [C0 + ".command: must be a list, got a string"],
    ),
    (
        "args-item-type",
        {C0 + ".args": ["-p", 5]},
        {},
        [C0 + '.args[1]: must be a string, got an integer (quote it: "5")'],
    ),
    (
        "command-nul",
        {C0 + ".command": ["nginx\x00x"]},
        {},
        [C0 + ".command[0]: must not contain a NUL character"],
    ),
    (
        "workingDir-relative",
        {C0 + ".workingDir": "app"},
        {},
        [C0 + '.workingDir: "app" must be an absolute path'],
    ),
    (
        "workingDir-proc",
        {C0 + ".workingDir": "/proc"},
        {},
        [
            C0 + '.workingDir: "/proc" is /proc, which a container may not use as its working '
            "directory"
        ],
    ),
    (
        "workingDir-below-proc-spelt-with-dots",
        {C0 + ".workingDir": "/app/../proc/./self//cwd"},
        {},
        [
            C0 + '.workingDir: "/app/../proc/./self//cwd" is under /proc, which a container may '
            "not use as its working directory"
        ],
    ),
    (
        "workingDir-sys",
        {C0 + ".workingDir": "//sys/fs/cgroup/"},
        {},
        [
            C0 + '.workingDir: "//sys/fs/cgroup/" is under /sys, which a container may not use as '
            "its working directory"
        ],
    ),
    (
        "workingDir-dev",
        {C0 + ".workingDir": "/../dev"},
        {},
        [
            C0 + '.workingDir: "/../dev" is /dev, which a container may not use as its working '
            "directory"
        ],
    ),
    (
        "workingDir-dev-shm-sibling",
        {C0 + ".workingDir": "/dev/shmx"},
        {},
        [
            C0 + '.workingDir: "/dev/shmx" is under /dev, which a container may not use as its '
            "working directory"
        ],
    ),
    (
        "workingDir-multiline",
        {C0 + ".workingDir": "/app\n/proc"},
        {},
        [C0 + ".workingDir: must be a single line"],
    ),
    # -- env -----------------------------------------------------------------------------
    ("env-type", {C0 + ".env": {"A": "1"}}, {}, [C0 + ".env: must be a list, got a mapping"]),
    (
        "env-item-type",
        {C0 + ".env": ["A=1"]},
        {},
        [C0 + ".env[0]: must be a mapping, got a string"],
    ),
    ("env-name-missing", {C0 + ".env": [{"value": "1"}]}, {}, [C0 + ".env[0].name: required"]),
    (
        "env-name-invalid",
        {C0 + ".env": [{"name": "1BAD", "value": "x"}]},
        {},
        [C0 + '.env[0].name: "1BAD" is not a valid variable name'],
    ),
    (
        "env-name-newline",
        {C0 + ".env": [{"name": "A\nB", "value": "x"}]},
        {},
        [C0 + ".env[0].name: must be a single line"],
    ),
    (
        "env-valueFrom",
        {C0 + ".env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
        {},
        [C0 + ".env[0].valueFrom: not supported; put the value in the env file of the container"],
    ),
    (
        "env-value-type",
        {C0 + ".env": [{"name": "PORT", "value": 8080}]},
        {},
        [C0 + '.env[0].value: must be a string, got an integer (quote it: "8080")'],
    ),
    (
        "env-value-bool",
        {C0 + ".env": [{"name": "DEBUG", "value": True}]},
        {},
        [C0 + '.env[0].value: must be a string, got a boolean (quote it: "true")'],
    ),
    (
        "env-value-nul",
        {C0 + ".env": [{"name": "A", "value": "a\x00b"}]},
        {},
        [C0 + ".env[0].value: must not contain a NUL character"],
    ),
    # -- ports ---------------------------------------------------------------------------
    ("ports-type", {C0 + ".ports": 8080}, {}, [C0 + ".ports: must be a list, got an integer"]),
    (
        "containerPort-missing",
        {C0 + ".ports[1]": {"protocol": "TCP"}},
        {},
        [C0 + ".ports[1].containerPort: required"],
    ),
    (
        "containerPort-0",
        {C0 + ".ports[1]": {"containerPort": 0}},
        {},
        [C0 + ".ports[1].containerPort: must be a port number between 1 and 65535, got 0"],
    ),
    (
        "containerPort-too-big",
        {C0 + ".ports[1]": {"containerPort": 70000}},
        {},
        [C0 + ".ports[1].containerPort: must be a port number between 1 and 65535, got 70000"],
    ),
    (
        "containerPort-string",
        {C0 + ".ports[1]": {"containerPort": "9000"}},
        {},
        [C0 + '.ports[1].containerPort: must be a port number between 1 and 65535, got "9000"'],
    ),
    (
        "protocol",
        {C0 + ".ports[0].protocol": "HTTP"},
        {},
        [C0 + '.ports[0].protocol: must be one of TCP, UDP, SCTP, got "HTTP"'],
    ),
    (
        "port-name",
        {C0 + ".ports[0].name": "Http_Port"},
        {},
        [
            C0 + '.ports[0].name: "Http_Port" is not a valid port name (at most 15 lowercase '
            "letters, digits and '-')"
        ],
    ),
    (
        "hostPort-0",
        {C0 + ".ports[0].hostPort": 0},
        {},
        [C0 + ".ports[0].hostPort: must be a port number between 1 and 65535, got 0"],
    ),
    (
        "hostIP",
        {C0 + ".ports[1]": {"containerPort": 443, "hostPort": 8443, "hostIP": "nope"}},
        {},
        [C0 + '.ports[1].hostIP: "nope" is not an IP address'],
    ),
    (
        "hostPort-twice",
        {
            C0 + ".ports[1]": {"containerPort": 443, "hostPort": 8443},
            "spec.containers[1]": second_container(
                ports=[{"containerPort": 8443, "hostPort": 8443}]
            ),
        },
        {},
        ["spec.containers[1].ports[0].hostPort: 8443/tcp is published twice"],
    ),
    (
        "socket-port-missing",
        {C0 + ".ports": [{"containerPort": 9000}]},
        {},
        ["spec.containers: no container has containerPort 8080 (TCP), a socket port of the policy"],
    ),
    (
        "socket-port-udp",
        {C0 + ".ports[0].protocol": "UDP"},
        {},
        ["spec.containers: no container has containerPort 8080 (TCP), a socket port of the policy"],
    ),
    # -- securityContext -----------------------------------------------------------------
    ("securityContext-type", {SC: ["privileged"]}, {}, [SC + ": must be a mapping, got a list"]),
    ("runAsUser-0", {SC + ".runAsUser": 0}, {}, [SC + ".runAsUser: 0 (root) is not allowed"]),
    (
        "runAsUser-negative",
        {SC + ".runAsUser": -1},
        {},
        [SC + ".runAsUser: must be between 1 and 4294967294, got -1"],
    ),
    (
        "runAsUser-string",
        {SC + ".runAsUser": "1000"},
        {},
        [SC + '.runAsUser: must be an integer, got "1000"'],
    ),
    (
        "runAsUser-bool",
        {SC + ".runAsUser": True},
        {},
        [SC + ".runAsUser: must be an integer, got true"],
    ),
    (
        "runAsGroup-0",
        {SC + ".runAsGroup": 0},
        {},
        [SC + ".runAsGroup: 0 (root's group) is not allowed"],
    ),
    (
        "runAsNonRoot-false",
        {SC + ".runAsNonRoot": False},
        {},
        [SC + ".runAsNonRoot: false is not allowed; containers never run as root"],
    ),
    (
        "privileged",
        {SC + ".privileged": True},
        {},
        [SC + ".privileged: true is not allowed; containers are never privileged"],
    ),
    (
        "privileged-string",
        {SC + ".privileged": "true"},
        {},
        [SC + '.privileged: must be true or false, got "true"'],
    ),
    (
        "allowPrivilegeEscalation",
        {SC + ".allowPrivilegeEscalation": True},
        {},
        [SC + ".allowPrivilegeEscalation: true is not allowed"],
    ),
    (
        "capabilities-add",
        {SC + ".capabilities": {"add": ["NET_ADMIN"]}},
        {},
        [SC + ".capabilities.add: not allowed; every capability is dropped"],
    ),
    (
        "capabilities-type",
        {SC + ".capabilities": ["ALL"]},
        {},
        [SC + ".capabilities: must be a mapping, got a list"],
    ),
    (
        "readOnlyRootFilesystem-false",
        {SC + ".readOnlyRootFilesystem": False},
        {},
        [
            SC + ".readOnlyRootFilesystem: false is not allowed by the policy for this container; "
            "mount an emptyDir (medium: Memory) where the program writes"
        ],
    ),
    (
        "readOnlyRootFilesystem-false-other-container-override",
        {SC + ".readOnlyRootFilesystem": False},
        {"containers": {"worker": {"read_only_root_filesystem": False}}},
        [
            SC + ".readOnlyRootFilesystem: false is not allowed by the policy for this container; "
            "mount an emptyDir (medium: Memory) where the program writes"
        ],
    ),
    (
        "seLinuxOptions",
        {SC + ".seLinuxOptions": {"type": "spc_t"}},
        {},
        [SC + ".seLinuxOptions: not allowed; SELinux labels are set by the host"],
    ),
    (
        "runAsUser-required",
        {},
        {"default_run_as_user": DELETE},
        [SC + ".runAsUser: required; the policy sets no default_run_as_user"],
    ),
]


@rule_table(ERRORS)
def test_error(base, pod_changes, policy_changes, expected):
    errors, _warnings = outcome(
        patched(shop_pod(), pod_changes), shop_policy(base, **policy_changes)
    )
    assert errors == expected
