"""The collection as an admin installs it (docs/install.md), without the lab and without
network access:

- built from this checkout with ``ansible-galaxy collection build``, the artifact holds the
  roles, the playbook, the docs and the example inventory, and nothing of the development
  checkout (lab, tests, caches, the link ``make collection`` makes);
- installed with ``ansible-galaxy collection install --offline`` into a temporary directory:
  its dependencies (galaxy.yml) come from the collections already installed next to
  ansible-core (the ``ansible`` package of requirements.txt holds them). Where they are
  missing they cannot be fetched offline, and the collection alone is installed with
  ``--no-deps`` (the dependency test is skipped then, saying so);
- the shipped example inventory parses (``ansible-inventory``), the installed playbook
  ``webhosting.pods.site`` passes ``--syntax-check`` against it, and its vault file works
  once encrypted as docs/install.md says;
- the example itself is checked in-process against what a run checks first: the roles'
  argument specs, the hosting role's preflight, and the policy engine on every seeded pod
  (strict: no warning), with the hosting's folders as the hosting role lays them out.

The Ansible commands run with a configuration of their own (the checkout's ansible.cfg,
which `make` exports, would put the checkout's collection first) and a private home.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pod_policy
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_checks, hosting_model

ROOT = Path(__file__).resolve().parents[3]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
EXAMPLE = ROOT / "inventories" / "example"
EXAMPLE_IN_ARTIFACT = "inventories/example"
EXAMPLE_PARTS = EXAMPLE_IN_ARTIFACT.split("/")
BIN = Path(sys.executable).parent
HOSTS = ["pod1.example.net", "pod2.example.net"]


# ---------------------------------------------------------------------------------------------
# Building and installing
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A private Ansible home and configuration: nothing of the checkout or of ~/.ansible."""
    if not (BIN / "ansible-galaxy").exists():
        pytest.skip("needs ansible-core's commands next to this Python")
    work = tmp_path_factory.mktemp("admin")
    (work / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    for sub in ("home", "ansible-home", "local-tmp", "collections"):
        (work / sub).mkdir()
    return work


def ansible_env(work):
    return {
        "PATH": os.pathsep.join([str(BIN), os.defpath]),
        "HOME": str(work / "home"),
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "local-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def run(work, *argv, cwd=None):
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=ansible_env(work),
        cwd=cwd or work,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture(scope="module")
def artifact(work):
    """The collection built from this checkout, as `ansible-galaxy collection build`."""
    dist = work / "dist"
    result = run(
        work, "ansible-galaxy", "collection", "build", "--output-path", str(dist), str(ROOT)
    )
    assert result.returncode == 0, result.stderr
    name = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
    assert (dist / name).is_file(), result.stdout
    return dist / name


@pytest.fixture(scope="module")
def installed(work, artifact):
    """(the installed collection's directory, whether its dependencies were resolved)."""
    target = work / "collections"
    result = run(
        work,
        "ansible-galaxy",
        "collection",
        "install",
        "--offline",
        "-p",
        str(target),
        str(artifact),
    )
    with_deps = result.returncode == 0
    if not with_deps:
        # The dependencies are not installed here and cannot be fetched offline.
        result = run(
            work,
            "ansible-galaxy",
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(target),
            str(artifact),
        )
    assert result.returncode == 0, result.stderr
    path = target / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (path / "MANIFEST.json").is_file()
    return path, with_deps


# ---------------------------------------------------------------------------------------------
# The artifact
# ---------------------------------------------------------------------------------------------
def artifact_members(artifact):
    with tarfile.open(artifact) as tar:
        return {member.name.rstrip("/"): member for member in tar.getmembers()}


REQUIRED = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "LICENSE",
    "meta/runtime.yml",
    "playbooks/site.yml",
    "docs/install.md",
    "docs/hostings.md",
    "docs/ingress.md",
    "docs/tenant.md",
    "docs/pod-policy.md",
    "docs/system-policy.md",
    "docs/userpod.md",
    EXAMPLE_IN_ARTIFACT + "/hosts.yml",
    EXAMPLE_IN_ARTIFACT + "/group_vars/pod_hosts/main.yml",
    EXAMPLE_IN_ARTIFACT + "/group_vars/pod_hosts/vault.yml",
    EXAMPLE_IN_ARTIFACT + "/host_vars/pod1.example.net.yml",
    EXAMPLE_IN_ARTIFACT + "/host_vars/pod2.example.net.yml",
    "bin/userpod",
    "plugins/module_utils/pod_policy/__init__.py",
    "tools/build_userpod.py",
] + [
    "roles/%s/%s" % (role, part)
    for role in ("host", "hosting", "ingress")
    for part in ("tasks/main.yml", "defaults/main.yml", "meta/argument_specs.yml")
]

# Top-level names of the development checkout that an admin never needs.
LEFT_OUT = {
    ".git",
    ".venv",
    ".venv-compat",
    ".collections",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".cache",
    "lab",
    "molecule",
    "tests",
    "benchmarks",
    "build",
    "Makefile",
    "ansible.cfg",
    "requirements.txt",
}


def test_artifact_holds_the_roles_the_docs_and_the_example(artifact):
    members = artifact_members(artifact)
    missing = [name for name in REQUIRED if name not in members]
    assert missing == []
    # the whole example directory, file for file
    example = sorted(str(path.relative_to(ROOT)) for path in EXAMPLE.rglob("*") if path.is_file())
    assert example and all(name in members for name in example)


def test_artifact_holds_nothing_of_the_development_checkout(artifact):
    members = artifact_members(artifact)
    assert sorted({name.split("/")[0] for name in members} & LEFT_OUT) == []
    inventories = [n for n in members if n.split("/")[0] == "inventories"]
    assert [
        n for n in inventories if n.split("/")[:2] not in (["inventories"], EXAMPLE_PARTS)
    ] == []
    assert [n for n in members if "__pycache__" in n.split("/") or n.endswith(".pyc")] == []
    # a link (the checkout's .collections link points back at the checkout) is never shipped
    assert [n for n, m in members.items() if m.issym() or m.islnk()] == []


def test_manifest_says_what_galaxy_yml_says_and_no_made_up_address(artifact):
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    for key in ("namespace", "name", "version", "license", "dependencies", "tags"):
        assert info[key] == GALAXY[key], key
    for key in ("repository", "documentation", "homepage", "issues"):
        # no address at all rather than one that leads nowhere
        assert info[key] is None or not re.search(r"example\.|\.invalid\b", info[key]), key
    assert "example.invalid" not in json.dumps(manifest)


def test_install_page_names_the_versions_the_metadata_claims():
    """docs/install.md names meta/runtime.yml's ansible-core and galaxy.yml's dependencies."""
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    lowest = re.fullmatch(r">=(\d+\.\d+)(\.0)?", runtime["requires_ansible"]).group(1)
    lines = (ROOT / "docs" / "install.md").read_text().splitlines()
    assert any("ansible-core %s" % lowest in line for line in lines)
    for collection, version in GALAXY["dependencies"].items():
        assert any("`%s`" % collection in line and version in line for line in lines), collection


# ---------------------------------------------------------------------------------------------
# The installed collection, as an admin runs it
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collections_found(work, installed):
    """{collection: [paths]} of what the private configuration's Ansible finds."""
    listed = run(work, "ansible-galaxy", "collection", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    found = {}
    for path, collections in json.loads(listed.stdout).items():
        for name in collections:
            found.setdefault(name, []).append(path)
    return found


def test_the_installed_collection_is_the_one_ansible_uses(installed, collections_found):
    path, _ = installed
    assert collections_found["webhosting.pods"] == [str(path.parent.parent)]


def test_dependencies_resolve_offline(installed, collections_found):
    _, with_deps = installed
    if not with_deps:
        pytest.skip(
            "galaxy.yml's dependencies are not installed next to this ansible-core and cannot "
            "be fetched offline: the collection was installed with --no-deps"
        )
    assert set(GALAXY["dependencies"]) <= set(collections_found)


def test_example_inventory_parses(work, installed):
    path, _ = installed
    result = run(work, "ansible-inventory", "-i", str(path / EXAMPLE_IN_ARTIFACT), "--list")
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr, result.stderr
    inventory = json.loads(result.stdout)
    assert sorted(inventory["pod_hosts"]["hosts"]) == HOSTS
    for host in HOSTS:
        hostvars = inventory["_meta"]["hostvars"][host]
        assert hostvars["ansible_user"] == "root"
        assert len(hostvars["webhosting_hostings"]) >= 2, host
        assert "vault_registry_passwords" in hostvars


def test_site_playbook_passes_the_syntax_check_against_the_example(work, installed):
    path, _ = installed
    example = str(path / EXAMPLE_IN_ARTIFACT)
    result = run(work, "ansible-playbook", "webhosting.pods.site", "--syntax-check", "-i", example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: %s" % (path / "playbooks" / "site.yml") in result.stdout
    hosts = run(work, "ansible-playbook", "webhosting.pods.site", "--list-hosts", "-i", example)
    assert hosts.returncode == 0, hosts.stderr
    assert "hosts (2):" in hosts.stdout
    assert all(host in hosts.stdout for host in HOSTS)


def test_the_vault_file_works_once_encrypted(work, installed, tmp_path):
    """What docs/install.md tells the admin to do with the example's vault file."""
    path, _ = installed
    inventory = tmp_path / "inventory"
    shutil.copytree(path / EXAMPLE_IN_ARTIFACT, inventory)
    vault = inventory / "group_vars" / "pod_hosts" / "vault.yml"
    plain = yaml.safe_load(vault.read_text())
    password = tmp_path / "vault-password"
    password.write_text("a test password, not a secret\n")
    encrypt = run(
        work, "ansible-vault", "encrypt", "--vault-password-file", str(password), str(vault)
    )
    assert encrypt.returncode == 0, encrypt.stderr
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    opened = run(
        work,
        "ansible-inventory",
        "-i",
        str(inventory),
        "--list",
        "--vault-password-file",
        str(password),
    )
    assert opened.returncode == 0, opened.stderr
    hostvars = json.loads(opened.stdout)["_meta"]["hostvars"]["pod1.example.net"]
    assert hostvars["vault_registry_passwords"] == plain["vault_registry_passwords"]


# ---------------------------------------------------------------------------------------------
# The example inventory against what a run checks first
# ---------------------------------------------------------------------------------------------
def load_yaml(path):
    return yaml.safe_load(path.read_text()) or {}


def example_vars(host):
    """The variables of ``host`` in the example: group_vars/pod_hosts/*, then host_vars."""
    merged = dict(load_yaml(EXAMPLE / "hosts.yml")["pod_hosts"].get("vars") or {})
    for path in sorted((EXAMPLE / "group_vars" / "pod_hosts").glob("*.yml")):
        merged.update(load_yaml(path))
    merged.update(load_yaml(EXAMPLE / "host_vars" / ("%s.yml" % host)))
    return merged


def role_specs(role):
    specs = load_yaml(ROOT / "roles" / role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"]["options"]


# The collection-wide names the roles read as the defaults of their own variables.
ALIASES = {
    "webhosting_hostings": ("hosting", "hosting_hostings"),
    "webhosting_hosting_limit": ("hosting", "hosting_limit"),
    "webhosting_policy_defaults": ("hosting", "hosting_policy_defaults"),
    "webhosting_hostings_base_dir": ("hosting", "hosting_base_dir"),
}


@pytest.mark.parametrize("host", HOSTS)
def test_example_variables_are_the_roles_own(host):
    """Every variable of the example is a variable of one of the roles (or Ansible's, or a
    vault_ secret) and has the type its argument spec declares."""
    by_role = {}
    for name, value in example_vars(host).items():
        if name.startswith(("ansible_", "vault_")):
            continue
        if name in ALIASES:
            role, name = ALIASES[name]
        else:
            role = name.split("_")[0]
            assert role in ("host", "hosting", "ingress"), "%s belongs to no role" % name
        by_role.setdefault(role, {})[name] = value
    assert by_role["hosting"]["hosting_hostings"]
    for role, values in by_role.items():
        result = ArgumentSpecValidator(role_specs(role)).validate(values)
        assert result.error_messages == [], role


def role_settings(inventory_vars, **overrides):
    """The hosting model's settings (roles/hosting/vars/main.yml) for ``inventory_vars``:
    each setting's variable from the inventory, else its role default (for a default that
    falls back to another variable, that variable or the fallback)."""
    template = re.compile(r"\{\{\s*(\w+)\s*\}\}")
    fallback = re.compile(r"\{\{\s*(\w+)\s*\|\s*default\((.*)\)\s*\}\}")
    defaults = load_yaml(ROOT / "roles" / "hosting" / "defaults" / "main.yml")
    aliases = {alias: name for name, (_role, alias) in ALIASES.items()}
    settings = {}
    for key, value in load_yaml(ROOT / "roles" / "hosting" / "vars" / "main.yml")[
        "__hosting_settings"
    ].items():
        variable = template.fullmatch(value).group(1)
        if variable in inventory_vars:
            settings[key] = inventory_vars[variable]
            continue
        if aliases.get(variable) in inventory_vars:
            settings[key] = inventory_vars[aliases[variable]]
            continue
        default = defaults[variable]
        match = fallback.fullmatch(default) if isinstance(default, str) else None
        if match:
            other = match.group(1)
            default = inventory_vars.get(other, yaml.safe_load(match.group(2)))
        settings[key] = default
    settings.update(overrides)
    return settings


@pytest.mark.parametrize("host", HOSTS)
def test_example_hostings_pass_the_preflight(host, tmp_path):
    variables = example_vars(host)
    settings = role_settings(variables, base_dir=str(tmp_path / "srv"))
    errors = hosting_checks.preflight_errors(variables["webhosting_hostings"], settings, {}, {}, [])
    assert errors == []


@pytest.mark.parametrize("host", HOSTS)
def test_example_seeded_pods_render_without_a_warning(host, tmp_path):
    """Each present hosting's `pod`, as seeded on a new host: with the policy the hosting role
    writes, its env files, and only the folders the role creates."""
    variables = example_vars(host)
    settings = role_settings(
        variables,
        base_dir=str(tmp_path / "srv"),
        state_base_dir=str(tmp_path / "state"),
        config_dir=str(tmp_path / "etc"),
    )
    rendered = 0
    for hosting in variables["webhosting_hostings"]:
        if not hosting_model.is_present(hosting):
            continue
        model = hosting_model.layout(hosting, settings)
        for sub in ("www", "data", "logs", "scripts", "tmp/run", "private/container-config"):
            (Path(model["root"]) / sub).mkdir(parents=True, exist_ok=True)
        for container, env in (hosting.get("env_files") or {}).items():
            env_file = Path(model["container_config"]) / (
                "%s-%s.env" % (hosting["name"], container)
            )
            env_file.write_text(hosting_model.env_text(model, container, env))
        try:
            result = pod_policy.render_pod(
                yaml.safe_dump(hosting["pod"]), model["policy"], strict=True
            )
        except pod_policy.PodSpecError as exc:
            pytest.fail("%s: %s" % (hosting["name"], exc.errors))
        assert result.pod["metadata"]["name"] == hosting["name"]
        rendered += 1
    assert rendered >= 2


def documented_ingress_keys():
    """The keys of the per-hosting `ingress:` mapping docs/ingress.md shows."""
    text = (ROOT / "docs" / "ingress.md").read_text()
    block = re.search(r"```yaml\n(ingress:\n.*?)```", text, re.S)
    assert block, "docs/ingress.md: no ```yaml block of the ingress mapping"
    return set(yaml.safe_load(block.group(1))["ingress"])


@pytest.mark.parametrize("host", HOSTS)
def test_example_ingress_keys_are_documented(host):
    known = documented_ingress_keys()
    for hosting in example_vars(host)["webhosting_hostings"]:
        assert set(hosting.get("ingress") or {}) <= known, hosting["name"]


def test_example_secrets_come_from_the_vault():
    """Passwords are vault_ variables that vault.yml defines; vault.yml says it is an
    example, and is plain text so that the example runs as shipped."""
    vault_path = EXAMPLE / "group_vars" / "pod_hosts" / "vault.yml"
    text = vault_path.read_text()
    assert "EXAMPLE ONLY" in text and "ansible-vault encrypt" in text
    vault = load_yaml(vault_path)
    assert vault and all(name.startswith("vault_") for name in vault)
    used = set()
    for host in HOSTS:
        for hosting in load_yaml(EXAMPLE / "host_vars" / ("%s.yml" % host))["webhosting_hostings"]:
            if "registry" in hosting:
                password = hosting["registry"]["password"]
                assert re.fullmatch(r"\{\{ vault_\w+(\['[a-z0-9-]+'\])? \}\}", password), password
            for value in re.findall(
                r"\{\{ (vault_\w+)(?:\['([a-z0-9-]+)'\])? \}\}", json.dumps(hosting)
            ):
                used.add(value)
    for name, key in used:
        assert name in vault, name
        assert not key or key in vault[name], (name, key)
