"""Typos in the inventory are errors before anything changes (issue 31): unknown keys at
every level of a hosting item, the effective policy loaded by the engine, and variables with
the collection's prefixes that no role knows."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.webhosting.pods.plugins.filter import hosting as hosting_filters
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_checks as hc
from ansible_collections.webhosting.pods.plugins.module_utils import inventory_checks as ic

# The settings and the hosting of test_hosting_model.py (not importable: tests are no package).
SETTINGS = yaml.safe_load(
    """
base_dir: /srv/hostings
state_base_dir: /var/lib/webhosting-pods
config_dir: /etc/webhosting-pods
socket_ports: [8080]
policy_defaults: {allowed_registries: [r.test], resources: {memory: 1Gi, cpu: 1}}
registry_server: r.test:5000
userpod_path: /usr/local/bin/userpod
podman_path: /usr/bin/podman
systemctl_path: /usr/bin/systemctl
pod_start_timeout: 300
uid_min: 10000
uid_max: 59999
"""
)


def hosting(**extra):
    return dict({"name": "shop", "uid": 10001, "gid": 10001, "domains": ["shop.test"]}, **extra)


ROOT = Path(__file__).resolve().parents[4]
AT = "webhosting_hostings[0] (shop)"


def preflight(*hostings, settings=SETTINGS):
    return hc.preflight_errors(list(hostings), settings, {}, {}, [])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"domian": ["x.test"]}, f"{AT}.domian: unknown key (did you mean domains?)"),
        (
            {"ingress": {"hsts_maxage": 10}},
            f"{AT}.ingress.hsts_maxage: unknown key (did you mean hsts_max_age?)",
        ),
        (
            {"ingress": {"static_path": [{"prefix": "/s"}]}},
            f"{AT}.ingress.static_path: unknown key (did you mean static_paths?)",
        ),
        (
            {"ingress": {"static_paths": [{"prefix": "/s", "dri": "x"}]}},
            f"{AT}.ingress.static_paths[0].dri: unknown key (did you mean dir?)",
        ),
        (
            {"sftp": {"authorized_key": []}},
            f"{AT}.sftp.authorized_key: unknown key (did you mean authorized_keys?)",
        ),
        (
            {"limits": {"memory": "1G"}},
            f"{AT}.limits.memory: unknown key (did you mean memory_max?)",
        ),
        (
            {"limits": {"pids": 10}},
            f"{AT}.limits.pids: unknown key (known: cpu_weight, memory_max,",
        ),
        (
            {
                "cron_jobs": [
                    {"name": "a", "container": "web", "command": ["x"], "schedul": "daily"}
                ]
            },
            f"{AT}.cron_jobs[0].schedul: unknown key (did you mean schedule?)",
        ),
        (
            {"registry": {"user": "u", "password": "p", "sever": "r.test"}},
            f"{AT}.registry.sever: unknown key (did you mean server?)",
        ),
        (
            {"policy": {"netwrok": "none"}},
            f"{AT}.policy.netwrok: unknown key (did you mean network?)",
        ),
        (
            {"policy": {"allowed_registries": ["https://registry.example.net"]}},
            f'{AT}.policy.allowed_registries[0]: "https://registry.example.net" is not a registry'
            " host or host/path prefix",
        ),
        ({"policy": {"network": "host"}}, f"{AT}.policy.network:"),
        (
            {"registry": {"server": "https://r.test", "user": "u", "password": "secret-pw"}},
            f'{AT}.registry.server: "https://r.test" is not a registry (a host name',
        ),
        (
            {"registry": {"user": "u:x", "password": "secret-pw"}},
            f"{AT}.registry.user: must not contain ':'",
        ),
        ({"policy": {"resources": {"memory": "lots"}}}, f"{AT}.policy.resources.memory:"),
    ],
)
def test_a_typo_is_an_error_naming_its_path(extra, expected):
    errors = preflight(hosting(**extra))
    assert any(line.startswith(expected) for line in errors), errors
    assert all(line.startswith(expected.split(":")[0].rsplit(".", 1)[0]) for line in errors), errors


def test_a_bad_policy_default_names_the_defaults_and_the_hosting():
    settings = dict(SETTINGS, policy_defaults={"network": "bogus"})
    errors = preflight(hosting(), settings=settings)
    assert len(errors) == 1 and errors[0].startswith("webhosting_policy_defaults.network: "), errors
    assert errors[0].endswith("(hosting shop)")


def test_every_documented_key_is_known():
    """The full example of docs/hostings.md and every inventory shipped pass the checks."""
    docs = (ROOT / "docs" / "hostings.md").read_text()
    block = docs.split("One hosting:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    item = yaml.safe_load(block)[0]
    assert ic.key_errors(AT, item) == []
    ingress_doc = (ROOT / "docs" / "ingress.md").read_text()
    ingress = yaml.safe_load(
        ingress_doc.split("Per hosting, optional mapping `ingress:`", 1)[1]
        .split("```yaml\n", 1)[1]
        .split("```", 1)[0]
    )
    assert ic.key_errors(AT, ingress) == []


def _inventory_variables(path):
    """Every variable an inventory file sets: its host and group vars."""
    data = yaml.safe_load(path.read_text())
    names = set()

    def walk(group):
        names.update((group.get("vars") or {}).keys())
        for host in (group.get("hosts") or {}).values():
            names.update((host or {}).keys())
        for child in (group.get("children") or {}).values():
            walk(child or {})

    if "all" in data:
        walk(data["all"])
    else:
        names.update(data)
    return names


INVENTORY_FILES = sorted(
    [p for p in (ROOT / "inventories").rglob("*.yml") if "vault" not in p.name]
    + list((ROOT / "molecule").glob("*/inventory/**/*.yml"))
)


@pytest.mark.parametrize("path", INVENTORY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_inventories_use_only_known_variables(path):
    names = _inventory_variables(path)
    assert hosting_filters.webhosting_variable_errors(names) == []


def test_every_inventory_hosting_passes_the_key_checks():
    for path in INVENTORY_FILES:
        data = yaml.safe_load(path.read_text()) or {}
        for index, item in enumerate(data.get("webhosting_hostings") or []):
            assert ic.key_errors(f"{path.name}[{index}]", item) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "webhosting_policy_default",
            "webhosting_policy_default: no role of webhosting.pods knows this variable"
            " (did you mean webhosting_policy_defaults?)",
        ),
        (
            "hosting_registry_sever",
            "hosting_registry_sever: no role of webhosting.pods knows this variable"
            " (did you mean hosting_registry_server?)",
        ),
        (
            "webhosting_something_else",
            "webhosting_something_else: no role of webhosting.pods knows this variable",
        ),
        (
            "ingress_acme_directroy",
            "ingress_acme_directroy: no role of webhosting.pods knows this variable"
            " (did you mean ingress_acme_directory?)",
        ),
        (
            "host_sftp_enable",
            "host_sftp_enable: no role of webhosting.pods knows this variable"
            " (did you mean host_sftp_enabled?)",
        ),
    ],
)
def test_an_unknown_variable_with_a_known_prefix(name, expected):
    errors = hosting_filters.webhosting_variable_errors([name, "webhosting_hostings"])
    assert len(errors) == 1 and errors[0].startswith(expected), errors


@pytest.mark.parametrize(
    "name",
    ["host_datacenter", "ingress_team_email", "hostname", "ansible_host", "lab_release", "__x"],
)
def test_a_providers_own_variable_with_a_generic_prefix_is_left_alone(name):
    assert hosting_filters.webhosting_variable_errors([name]) == []


def _published_and_read_names():
    """What the collection itself sets or reads besides the argument specs: the facts the
    roles and playbooks publish (set_fact keys and play or include variables without the
    internal __ prefix) and the webhosting_* variables the role defaults read."""
    import re

    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ansible.builtin.set_fact", "vars") and isinstance(value, dict):
                    names.update(k for k in value if not k.startswith("__"))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("playbooks/*.yml")):
        walk(yaml.safe_load(path.read_text()))
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        names.update(re.findall(r"\bwebhosting_[a-z_]+", path.read_text()))
    return names


def test_the_published_facts_and_the_site_variables_are_known():
    names = _published_and_read_names()
    # the derivation finds what it is meant to (else this test would pass on nothing)
    assert {"hosting_failed_hostings", "ingress_failed_hostings", "hosting_orphans"} <= names
    assert {"webhosting_hostings", "webhosting_policy_defaults"} <= names
    assert hosting_filters.webhosting_variable_errors(names) == []


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [("", "", 0), ("abc", "abc", 0), ("abc", "abd", 1), ("abc", "ab", 1), ("kitten", "sitting", 3)],
)
def test_distance(first, second, expected):
    assert ic.distance(first, second) == expected
