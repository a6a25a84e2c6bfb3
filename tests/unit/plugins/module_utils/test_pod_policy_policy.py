"""The system policy: the provider's format accepted unchanged, our extensions, and every
error naming ``policy.<key>``."""

import pod_policy
import pytest
import yaml
from podspec_helpers import DELETE, PROVIDER_SYSTEM

BASE = "/srv/hostings/mycontainertest"


def minimal(**changes):
    policy = {"name": "shop", "volumes_base_dir": "/srv/hostings/shop"}
    for key, value in changes.items():
        if value is DELETE:
            policy.pop(key)
        else:
            policy[key] = value
    return policy


def errors_of(policy):
    try:
        pod_policy.load_policy(policy)
    except pod_policy.PodSpecError as exc:
        return exc.errors
    return []


def test_provider_policy_is_accepted_unchanged():
    assert pod_policy.load_policy(PROVIDER_SYSTEM) == {
        "name": "mycontainertest",
        "volumes_base_dir": BASE,
        "volumes_containers_gid_share": True,
        "volumes_containers_gid": 0,
        "container_env_dir": BASE,
        "provider_env_dir": None,
        "tmp_dir": BASE + "/tmp",
        "pidfile": BASE + "/pod.pid",
        "socket_ports": {8080: {"dir": BASE + "/tmp/run"}},
        "exposed_ports": [],
        "allowed_registries": [],
        "default_run_as_user": None,
        "default_run_as_group": None,
        "containers": {},
        "network": "default",
        "resources": {},
        "max_containers": 10,
        "default_memory_volume_size": "64Mi",
        "restarts_max": 5,
        "restarts_window": 300,
        "container_log_max": "100Mi",
        "probe_limits": {
            "period_min": 5,
            "timeout_max": 10,
            "initial_delay_max": 600,
            "failure_threshold_max": 10,
        },
    }


def test_defaults_of_a_minimal_policy():
    policy = pod_policy.load_policy(minimal())
    assert policy["tmp_dir"] == "/srv/hostings/shop/tmp"
    assert policy["pidfile"] == "/srv/hostings/shop/pod.pid"
    assert policy["container_env_dir"] is None
    assert policy["volumes_containers_gid_share"] is False
    assert policy["socket_ports"] == {} and policy["exposed_ports"] == []


@pytest.mark.parametrize(
    "source",
    [PROVIDER_SYSTEM, yaml.safe_load(PROVIDER_SYSTEM), PROVIDER_SYSTEM.encode()],
    ids=["text", "mapping", "bytes"],
)
def test_normalising_is_idempotent(source):
    once = pod_policy.load_policy(source)
    assert pod_policy.load_policy(once) == once
    assert pod_policy.load_policy(yaml.safe_dump(once)) == once


def test_load_policy_does_not_change_its_argument():
    source = yaml.safe_load(PROVIDER_SYSTEM)
    before = yaml.safe_dump(source)
    pod_policy.load_policy(source)
    assert yaml.safe_dump(source) == before


# (id, policy changes, normalised key, expected value)
NORMALISED = [
    (
        "socket-port-string-key",
        {"socket_ports": {"8080": {"dir": "/r"}}},
        "socket_ports",
        {8080: {"dir": "/r"}},
    ),
    (
        "socket-dir-normalised",
        {"socket_ports": {8080: {"dir": "/r//run/"}}},
        "socket_ports",
        {8080: {"dir": "/r/run"}},
    ),
    ("exposed-int", {"exposed_ports": [8443]}, "exposed_ports", ["8443/tcp"]),
    (
        "exposed-case-and-duplicates",
        {"exposed_ports": ["8443/TCP", "8443/tcp", "53/udp"]},
        "exposed_ports",
        ["8443/tcp", "53/udp"],
    ),
    (
        "registries",
        {"allowed_registries": ["Quay.io/shop/", "docker.io", "docker.io"]},
        "allowed_registries",
        ["quay.io/shop", "docker.io"],
    ),
    (
        "containers",
        {"containers": {"web": {"read_only_root_filesystem": False}, "db": None}},
        "containers",
        {
            "web": {"read_only_root_filesystem": False, "systemd": False},
            "db": {"read_only_root_filesystem": True, "systemd": False},
        },
    ),
    (
        "resources",
        {"resources": {"cpu": 1, "memory": 536870912}},
        "resources",
        {"cpu": "1", "memory": "536870912"},
    ),
    (
        "resources-units",
        {"resources": {"cpu": "500m", "memory": "512Mi"}},
        "resources",
        {"cpu": "500m", "memory": "512Mi"},
    ),
    ("resources-cpu-float", {"resources": {"cpu": 0.5}}, "resources", {"cpu": "0.5"}),
    ("network", {"network": "pasta"}, "network", "pasta"),
    (
        "defaults",
        {"default_run_as_user": 1000, "default_run_as_group": 1001},
        "default_run_as_group",
        1001,
    ),
    ("gid", {"volumes_containers_gid": 1000}, "volumes_containers_gid", 1000),
    ("max-containers", {"max_containers": 3}, "max_containers", 3),
    ("restarts-max", {"restarts_max": 2}, "restarts_max", 2),
    ("restarts-window", {"restarts_window": 86400}, "restarts_window", 86400),
    ("container-log-max", {"container_log_max": "2Mi"}, "container_log_max", "2Mi"),
    (
        "probe-limits",
        {"probe_limits": {"period_min": 2}},
        "probe_limits",
        {"period_min": 2, "timeout_max": 10, "initial_delay_max": 600, "failure_threshold_max": 10},
    ),
]


@pytest.mark.parametrize(
    "changes, key, expected", [c[1:] for c in NORMALISED], ids=[c[0] for c in NORMALISED]
)
def test_normalised(changes, key, expected):
    assert pod_policy.load_policy(minimal(**changes))[key] == expected


# (id, policy changes, exact errors)
ERRORS = [
    ("unknown-key", {"network_mode": "host"}, ["policy.network_mode: unknown key"]),
    ("name-missing", {"name": DELETE}, ["policy.name: required"]),
    (
        "name-invalid",
        {"name": "My_Shop"},
        [
            "policy.name: \"My_Shop\" is not a valid name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        ],
    ),
    ("base-missing", {"volumes_base_dir": DELETE}, ["policy.volumes_base_dir: required"]),
    (
        "base-relative",
        {"volumes_base_dir": "srv/shop"},
        ['policy.volumes_base_dir: "srv/shop" must be an absolute path'],
    ),
    (
        "base-dotdot",
        {"volumes_base_dir": "/srv/../etc"},
        ['policy.volumes_base_dir: "/srv/../etc" must not contain ".."'],
    ),
    (
        "base-newline",
        {"volumes_base_dir": "/srv/x\ny"},
        ["policy.volumes_base_dir: must be a single line"],
    ),
    (
        "gid-share-type",
        {"volumes_containers_gid_share": "yes"},
        ['policy.volumes_containers_gid_share: must be true or false, got "yes"'],
    ),
    (
        "gid-negative",
        {"volumes_containers_gid": -1},
        ["policy.volumes_containers_gid: must be an integer between 0 and 4294967294, got -1"],
    ),
    (
        "env-dir",
        {"container_env_dir": 5},
        ['policy.container_env_dir: must be a string, got an integer (quote it: "5")'],
    ),
    ("tmp-dir", {"tmp_dir": "tmp"}, ['policy.tmp_dir: "tmp" must be an absolute path']),
    ("pidfile", {"pidfile": "pod.pid"}, ['policy.pidfile: "pod.pid" must be an absolute path']),
    (
        "socket-ports-type",
        {"socket_ports": [8080]},
        ["policy.socket_ports: must be a mapping, got a list"],
    ),
    (
        "socket-port-number",
        {"socket_ports": {"http": {"dir": "/r"}}},
        ['policy.socket_ports.http: "http" is not a port number between 1 and 65535'],
    ),
    (
        "socket-port-range",
        {"socket_ports": {70000: {"dir": "/r"}}},
        ["policy.socket_ports[70000]: 70000 is not a port number between 1 and 65535"],
    ),
    (
        "socket-port-twice",
        {"socket_ports": {8080: {"dir": "/r"}, "8080": {"dir": "/s"}}},
        ['policy.socket_ports["8080"]: port 8080 is listed twice'],
    ),
    (
        "socket-port-entry",
        {"socket_ports": {8080: "/r"}},
        ["policy.socket_ports[8080]: must be a mapping, got a string"],
    ),
    (
        "socket-port-dir-missing",
        {"socket_ports": {8080: {}}},
        ["policy.socket_ports[8080].dir: required"],
    ),
    (
        "socket-port-unknown-key",
        {"socket_ports": {8080: {"dir": "/r", "mode": "0777"}}},
        ["policy.socket_ports[8080].mode: unknown key"],
    ),
    (
        "exposed-type",
        {"exposed_ports": "8443/tcp"},
        ["policy.exposed_ports: must be a list, got a string"],
    ),
    (
        "exposed-format",
        {"exposed_ports": ["8443", "8443/http", "0/tcp", "70000/udp"]},
        [
            'policy.exposed_ports[0]: "8443" must be PORT/PROTOCOL, e.g. 8443/tcp',
            'policy.exposed_ports[1]: "8443/http" must be PORT/PROTOCOL, e.g. 8443/tcp',
            'policy.exposed_ports[2]: "0/tcp" must be PORT/PROTOCOL, e.g. 8443/tcp',
            'policy.exposed_ports[3]: "70000/udp" must be PORT/PROTOCOL, e.g. 8443/tcp',
        ],
    ),
    (
        "registries-type",
        {"allowed_registries": "docker.io"},
        ["policy.allowed_registries: must be a list, got a string"],
    ),
    (
        "registry-invalid",
        {"allowed_registries": ["https://quay.io"]},
        [
            'policy.allowed_registries[0]: "https://quay.io" is not a registry host or host/path '
            "prefix (e.g. quay.io/myorg)"
        ],
    ),
    (
        "default-user-root",
        {"default_run_as_user": 0},
        [
            "policy.default_run_as_user: must be an integer between 1 and 4294967294, got 0 "
            "(0 is root)"
        ],
    ),
    (
        "default-group-type",
        {"default_run_as_group": "1000"},
        ['policy.default_run_as_group: must be an integer between 1 and 4294967294, got "1000"'],
    ),
    (
        "default-user-bool",
        {"default_run_as_user": True},
        ["policy.default_run_as_user: must be an integer between 1 and 4294967294, got true"],
    ),
    (
        "containers-type",
        {"containers": ["web"]},
        ["policy.containers: must be a mapping, got a list"],
    ),
    (
        "container-name",
        {"containers": {"Web": {}}},
        [
            'policy.containers.Web: "Web" is not a valid name (lowercase letters, digits and '
            "'-', starting and ending with a letter or digit, at most 63 characters)"
        ],
    ),
    (
        "container-override-type",
        {"containers": {"web": {"systemd": "yes"}}},
        ['policy.containers.web.systemd: must be true or false, got "yes"'],
    ),
    (
        "container-override-unknown",
        {"containers": {"web": {"privileged": True}}},
        ["policy.containers.web.privileged: unknown key"],
    ),
    (
        "network",
        {"network": "host"},
        ['policy.network: must be one of default, none, pasta, slirp4netns, got "host"'],
    ),
    (
        "network-none-exposed",
        {"network": "none", "exposed_ports": ["8443/tcp"]},
        ["policy.exposed_ports: cannot publish ports when network is none"],
    ),
    ("resources-type", {"resources": "1Gi"}, ["policy.resources: must be a mapping, got a string"]),
    (
        "resources-cpu",
        {"resources": {"cpu": "lots"}},
        ['policy.resources.cpu: "lots" is not a CPU amount (e.g. 1, 0.5, 500m)'],
    ),
    (
        "resources-cpu-zero",
        {"resources": {"cpu": 0}},
        ["policy.resources.cpu: 0 is not a CPU amount (e.g. 1, 0.5, 500m)"],
    ),
    (
        "resources-memory",
        {"resources": {"memory": "1 GB"}},
        ['policy.resources.memory: "1 GB" is not a memory amount (e.g. 512Mi, 1Gi)'],
    ),
    ("resources-unknown", {"resources": {"gpu": 1}}, ["policy.resources.gpu: unknown key"]),
    (
        "max-containers",
        {"max_containers": 0},
        ["policy.max_containers: must be an integer between 1 and 100, got 0"],
    ),
    (
        "restarts-max",
        {"restarts_max": 1},
        ["policy.restarts_max: must be an integer between 2 and 100, got 1"],
    ),
    (
        "restarts-window",
        {"restarts_window": "5m"},
        ['policy.restarts_window: must be an integer between 10 and 86400, got "5m"'],
    ),
    (
        "container-log-max",
        {"container_log_max": "lots"},
        ['policy.container_log_max: "lots" is not a memory amount (e.g. 100Mi)'],
    ),
    (
        "probe-limits",
        {"probe_limits": {"period_min": 0, "periods": 3}},
        [
            "policy.probe_limits.period_min: must be an integer between 1 and 3600, got 0",
            "policy.probe_limits.periods: unknown key",
        ],
    ),
    ("not-a-mapping", None, ["policy: must be a mapping, got a list"]),
]


@pytest.mark.parametrize("changes, expected", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error(changes, expected):
    policy = ["name: shop"] if changes is None else minimal(**changes)
    assert errors_of(policy) == expected


def test_every_policy_error_at_once():
    assert errors_of({"name": "X", "network": "host", "tmp_dir": "t", "bogus": 1}) == [
        "policy.bogus: unknown key",
        "policy.name: \"X\" is not a valid name (lowercase letters, digits and '-', starting "
        "and ending with a letter or digit, at most 63 characters)",
        "policy.volumes_base_dir: required",
        'policy.tmp_dir: "t" must be an absolute path',
        'policy.network: must be one of default, none, pasta, slirp4netns, got "host"',
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ["policy: is empty"]),
        (
            "name: [",
            [
                "policy: line 2, column 1: did not find expected node content (while "
                "parsing a flow node)"
            ],
        ),
        ("- a\n- b\n", ["policy: must be a mapping, got a list"]),
        (b"\xff", ["policy: not valid UTF-8 text (byte 0)"]),
    ],
    ids=["empty", "syntax", "list", "binary"],
)
def test_policy_text_errors(text, expected):
    assert errors_of(text) == expected
