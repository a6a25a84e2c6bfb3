"""Fuzz of the whole engine, field by field: whatever one tenant writes in any field of a
pod file (and whatever an admin writes in any policy key), only PodSpecError leaves
render_pod and load_policy, with printable one-line messages.

test_pod_policy_properties.py proves the rendered pod is safe; this file hunts for
crashes. A crash here is not cosmetic: before it, one tenant's ``tcpSocket.port: "²"``
made the pod_spec module die for every hosting of a host (issue 31). The values below are
those that broke the engine or are of the same families: digits that are not ASCII, numbers
too large for a float or for ``int(str)``, deep nesting, wrong types at every level."""

import copy
import sys

import pod_policy
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from podspec_helpers import make_hosting, shop_policy

HUGE_DIGITS = "9" * 400
# Python refuses int(str) past sys.get_int_max_str_digits() (4300 by default, 3.11+)
HUGER_DIGITS = "9" * (getattr(sys, "get_int_max_str_digits", lambda: 4300)() + 10)
HOSTILE_SCALARS = [
    "²",
    "٣",
    "８０８０",
    "①",
    "1²",
    "⁸⁰",
    "𝟖𝟎𝟖𝟎",
    "٨٠٨٠",
    HUGE_DIGITS,
    HUGER_DIGITS,
    HUGE_DIGITS + "Mi",
    HUGE_DIGITS + "." + HUGE_DIGITS,
    "1e999",
    "1e999Mi",
    "0.0000000000000000000000000000001",
    "." * 5,
    "1.2.3",
    "-1",
    "+1",
    "0x50",
    "500m",
    "64Mi",
    "1e3Mi",
    "NaN",
    "inf",
    "",
    "\x00",
    "\u2028",
    "http",
    "8080",
    10**400,
    -(10**400),
    2**63,
    2**64 + 1,
    1e308,
    -1e308,
    float("inf"),
    float("nan"),
    0.5,
    -0,
    True,
    None,
]
hostile = st.recursive(
    st.sampled_from(HOSTILE_SCALARS) | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["port", "name", "path", "x", "²"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _deep(depth, leaf):
    node = leaf
    for level in range(depth):
        node = [node] if level % 2 else {"a": node}
    return node


deep = st.integers(20, 200).map(lambda depth: _deep(depth, "x"))


def rich_pod():
    """A valid pod that uses every part of the engine: probes of every kind, named ports,
    resources, env, commands, a security context, every volume kind."""
    probe_http = {
        "httpGet": {
            "port": "http",
            "path": "/health",
            "scheme": "HTTP",
            "httpHeaders": [{"name": "X-Probe", "value": "1"}],
        },
        "initialDelaySeconds": 1,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
        "successThreshold": 1,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "shop",
            "labels": {"app": "shop"},
            "annotations": {"note": "x"},
        },
        "spec": {
            "restartPolicy": "Always",
            "hostname": "shop",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/httpd"],
                    "args": ["-f", "-p", "8080"],
                    "workingDir": "/var/www",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                        "requests": {"cpu": "100m", "memory": "32Mi"},
                    },
                    "securityContext": {
                        "runAsUser": 1000,
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"], "add": []},
                    },
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10},
                    "readinessProbe": probe_http,
                    "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 5},
                    "volumeMounts": [
                        {"name": "www", "mountPath": "/var/www", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "cache", "mountPath": "/cache"},
                    ],
                }
            ],
            "volumes": [
                {"name": "www", "hostPath": {"path": "/data/www", "type": "Directory"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            ],
        },
    }


def _paths(node, prefix=()):
    """Every path (a tuple of keys and indexes) inside ``node``, containers first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


POD_PATHS = [path for path in _paths(rich_pod()) if path]


def _replaced(document, path, value):
    document = copy.deepcopy(document)
    node = document
    for token in path[:-1]:
        node = node[token]
    node[path[-1]] = value
    return document


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


@pytest.fixture(scope="module")
def policy(base):
    return pod_policy.load_policy(
        shop_policy(base, resources={"cpu": "2", "memory": "2Gi"}, exposed_ports=["8443/tcp"])
    )


def _refused_or_rendered(text, policy):
    try:
        result = pod_policy.render_pod(text, policy)
    except pod_policy.PodSpecError as exc:
        assert exc.errors
        for line in exc.errors + exc.warnings:
            assert isinstance(line, str) and line.isprintable(), line
        return exc.errors
    for line in result.warnings:
        assert line.isprintable(), line
    pod_policy.dump_pod(result.pod)
    return []


def _yaml(document):
    return yaml.safe_dump(document, sort_keys=False, width=10**6)


def test_the_rich_pod_is_valid(policy):
    """Without this the fuzz below would only ever test refusals."""
    assert _refused_or_rendered(_yaml(rich_pod()), policy) == []


# The cases that crashed the engine before (issue 31), named so a regression says which.
CRASHES = [
    (("spec", "containers", 0, "livenessProbe", "tcpSocket", "port"), "²"),
    (("spec", "containers", 0, "readinessProbe", "httpGet", "port"), "٣"),
    (("spec", "volumes", 1, "emptyDir", "sizeLimit"), HUGE_DIGITS),
    (("spec", "volumes", 2, "emptyDir", "sizeLimit"), "1e999Mi"),
    (("spec", "containers", 0, "ports", 0, "containerPort"), HUGER_DIGITS),
    (("spec", "containers", 0, "livenessProbe", "periodSeconds"), 10**400),
    # found by this fuzz in the engine of 0.2.0: ASCII digits past int()'s limit, and an
    # integer (not a string) amount that a float cannot hold
    (("spec", "containers", 0, "readinessProbe", "httpGet", "port"), HUGER_DIGITS),
    (("spec", "containers", 0, "livenessProbe", "tcpSocket", "port"), "1²"),
    (("spec", "volumes", 1, "emptyDir", "sizeLimit"), 10**400),
]


@pytest.mark.parametrize("path, value", CRASHES, ids=[".".join(map(str, p)) for p, _ in CRASHES])
def test_known_crashes_are_field_errors(policy, path, value):
    errors = _refused_or_rendered(_yaml(_replaced(rich_pod(), path, value)), policy)
    assert errors, "accepted %r at %s" % (value, path)
    # the error names the field (the YAML path's last key at least)
    assert any(str(path[-1]) in line for line in errors), errors


@given(path=st.sampled_from(POD_PATHS), value=hostile)
def test_any_field_any_hostile_value(policy, path, value):
    _refused_or_rendered(_yaml(_replaced(rich_pod(), path, value)), policy)


@given(
    changes=st.lists(st.tuples(st.sampled_from(POD_PATHS), hostile | deep), min_size=1, max_size=4)
)
def test_several_fields_at_once(policy, changes):
    document = rich_pod()
    for path, value in changes:
        try:
            document = _replaced(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed that path's parent
    _refused_or_rendered(_yaml(document), policy)


@given(path=st.sampled_from(POD_PATHS), value=st.sampled_from(HOSTILE_SCALARS[:9]))
def test_hostile_text_unquoted_in_yaml(policy, path, value):
    """The same values as plain YAML scalars, as a tenant types them (not quoted by a
    dumper): ``port: ²``."""
    marker = "FUZZ-MARKER-VALUE"
    text = _yaml(_replaced(rich_pod(), path, marker)).replace("'%s'" % marker, value)
    text = text.replace(marker, value)
    _refused_or_rendered(text, policy)


def test_huge_plain_integer_in_yaml(policy):
    text = _yaml(rich_pod()).replace("containerPort: 8080", "containerPort: " + HUGER_DIGITS)
    errors = _refused_or_rendered(text, policy)
    assert errors and any("containerPort" in line for line in errors), errors


POLICY_KEYS = [
    "name",
    "volumes_base_dir",
    "volumes_containers_gid_share",
    "container_env_dir",
    "tmp_dir",
    "socket_ports",
    "exposed_ports",
    "pidfile",
    "default_run_as_user",
    "default_run_as_group",
    "resources",
    "allowed_registries",
    "max_containers",
    "network",
    "containers",
    "probe_limits",
]


@given(key=st.sampled_from(POLICY_KEYS), value=hostile | deep)
def test_any_policy_key_any_hostile_value(base, key, value):
    source = shop_policy(base, **{key: value})
    try:
        loaded = pod_policy.load_policy(source)
    except pod_policy.PodSpecError as exc:
        assert exc.errors and all(line.isprintable() for line in exc.errors)
        return
    _refused_or_rendered(_yaml(rich_pod()), loaded)


@given(text=st.text(alphabet=st.sampled_from("²٣0123456789.:-eEiMKG ,[]{}\n'\"#"), max_size=80))
def test_policy_text_noise(text):
    try:
        pod_policy.load_policy(text)
    except pod_policy.PodSpecError as exc:
        assert exc.errors


@pytest.mark.parametrize("key", POLICY_KEYS)
def test_policy_integer_past_the_int_to_str_limit(base, key):
    """An admin's (or a vars plugin's) integer too long for repr(): a field error, not a
    ValueError from the message that shows it."""
    source = shop_policy(base, **{key: 10**5000})
    with pytest.raises(pod_policy.PodSpecError) as raised:
        pod_policy.load_policy(source)
    assert any(line.startswith("policy." + key) for line in raised.value.errors), (
        raised.value.errors
    )


@given(
    document=st.dictionaries(
        st.sampled_from(["registry.example.com", "r.test:5000", "https://x", "²", ""]) | st.text(),
        hostile | st.fixed_dictionaries({}, optional={"user": hostile, "password": hostile}),
        max_size=3,
    )
)
def test_registry_logins_any_hostile_value(document):
    """The tenant's registry logins file (and the provider's entry, in the preflight)."""
    try:
        pod_policy.load_registry_logins(yaml.safe_dump(document, allow_unicode=True), "auth.yaml")
    except pod_policy.PodSpecError as exc:
        assert exc.errors and all(line.isprintable() for line in exc.errors)
