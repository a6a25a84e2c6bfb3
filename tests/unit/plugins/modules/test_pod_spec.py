"""webhosting.pods.pod_spec run for real: ``python pod_spec.py args.json`` with the
collection importable (conftest links it under .collections), as Ansible runs a new-style
module on the managed host."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pod_policy
import pytest
import yaml
from podspec_helpers import (
    COLLECTIONS,
    MODULE,
    PROVIDER_POD,
    PROVIDER_WARNINGS,
    make_provider_hosting,
)


def run_module(tmp_path, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    completed = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture
def hosting(tmp_path):
    base = tmp_path / "mycontainertest"
    policy_text = make_provider_hosting(base)
    policy_file = tmp_path / "system.yaml"
    policy_file.write_text(policy_text)
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(PROVIDER_POD)
    return {
        "src": str(pod_file),
        "policy_file": str(policy_file),
        "dest": str(tmp_path / "rendered.yaml"),
        "policy_text": policy_text,
    }


def args_of(hosting, **changes):
    args = {key: value for key, value in hosting.items() if key != "policy_text"}
    args.update(changes)
    return {key: value for key, value in args.items() if value is not None}


def expected_text(hosting):
    return pod_policy.dump_pod(pod_policy.render_pod(PROVIDER_POD, hosting["policy_text"]).pod)


def test_writes_then_is_idempotent(tmp_path, hosting):
    first = run_module(tmp_path, **args_of(hosting))
    assert first["changed"] is True
    assert first.get("failed") is not True
    with open(hosting["dest"]) as handle:
        assert handle.read() == expected_text(hosting)
    assert first["rendered"] == yaml.safe_load(expected_text(hosting))
    assert first["warnings_list"] == PROVIDER_WARNINGS
    assert [w["event"]["msg"] if isinstance(w, dict) else w for w in first["warnings"]] == (
        PROVIDER_WARNINGS
    )
    assert first["errors"] == []
    second = run_module(tmp_path, **args_of(hosting))
    assert second["changed"] is False


def test_check_mode_quartet(tmp_path, hosting):
    checked = run_module(tmp_path, _ansible_check_mode=True, **args_of(hosting))
    assert checked["changed"] is True
    assert not os.path.exists(hosting["dest"])
    assert run_module(tmp_path, **args_of(hosting))["changed"] is True
    assert run_module(tmp_path, _ansible_check_mode=True, **args_of(hosting))["changed"] is False
    assert run_module(tmp_path, **args_of(hosting))["changed"] is False


def test_diff(tmp_path, hosting):
    with open(hosting["dest"], "w") as handle:
        handle.write("old: content\n")
    result = run_module(tmp_path, _ansible_diff=True, **args_of(hosting))
    assert result["changed"] is True
    assert result["diff"]["before"] == "old: content\n"
    assert result["diff"]["after"] == expected_text(hosting)


def test_mode_owner_group(tmp_path, hosting):
    result = run_module(tmp_path, mode="0600", **args_of(hosting))
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(hosting["dest"]).st_mode) == 0o600
    os.chmod(hosting["dest"], 0o644)
    again = run_module(tmp_path, mode="0600", **args_of(hosting))
    assert again["changed"] is True
    assert stat.S_IMODE(os.stat(hosting["dest"]).st_mode) == 0o600
    assert run_module(tmp_path, mode="0600", **args_of(hosting))["changed"] is False


def test_inline_policy_with_string_port_keys(tmp_path, hosting):
    policy = yaml.safe_load(hosting["policy_text"])
    policy["socket_ports"] = {"8080": policy["socket_ports"][8080]}
    result = run_module(tmp_path, **args_of(hosting, policy_file=None, policy=policy))
    assert result["changed"] is True
    with open(hosting["dest"]) as handle:
        assert handle.read() == expected_text(hosting)


def test_invalid_pod_fails_with_every_error_and_keeps_dest(tmp_path, hosting):
    with open(hosting["dest"], "w") as handle:
        handle.write("last good\n")
    with open(hosting["src"], "w") as handle:
        handle.write(
            PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0").replace("/data/app", "/x")
        )
    result = run_module(tmp_path, **args_of(hosting))
    errors = [
        "spec.volumes[0].hostPath.path: /x does not exist in the hosting",
        "spec.containers[0].securityContext.runAsUser: 0 (root) is not allowed",
    ]
    assert result["failed"] is True
    assert result["errors"] == errors
    assert result["msg"] == "%s: 2 errors in the pod spec or the policy:\n%s" % (
        hosting["src"],
        "\n".join(errors),
    )
    with open(hosting["dest"]) as handle:
        assert handle.read() == "last good\n"


def test_strict(tmp_path, hosting):
    result = run_module(tmp_path, strict=True, **args_of(hosting))
    assert result["failed"] is True
    assert result["errors"] == PROVIDER_WARNINGS


def test_invalid_policy(tmp_path, hosting):
    result = run_module(
        tmp_path, **args_of(hosting, policy_file=None, policy={"name": "x", "network": "host"})
    )
    assert result["failed"] is True
    assert result["errors"] == [
        "policy.volumes_base_dir: required",
        'policy.network: must be one of default, none, pasta, slirp4netns, got "host"',
    ]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"policy": {"name": "x"}}, "parameters are mutually exclusive: policy|policy_file"),
        ({"policy_file": None}, "one of the following is required: policy, policy_file"),
        ({"src": None}, "missing required arguments: src"),
    ],
    ids=["both-policies", "no-policy", "no-src"],
)
def test_argument_errors(tmp_path, hosting, changes, message):
    result = run_module(tmp_path, **args_of(hosting, **changes))
    assert result["failed"] is True
    assert result["msg"] == message


@pytest.mark.parametrize("which", ["src", "policy_file"])
def test_unreadable_files(tmp_path, hosting, which):
    missing = str(tmp_path / "missing.yaml")
    result = run_module(tmp_path, **args_of(hosting, **{which: missing}))
    what = "pod file" if which == "src" else "system policy"
    assert result["failed"] is True
    assert result["msg"] == "%s: cannot read the %s: No such file or directory" % (missing, what)


def test_dest_is_a_directory(tmp_path, hosting):
    os.mkdir(hosting["dest"])
    result = run_module(tmp_path, **args_of(hosting))
    assert result["failed"] is True
    assert result["msg"] == "%s: is a directory" % hosting["dest"]


def test_documentation_matches_the_argument_spec():
    """DOCUMENTATION, EXAMPLES and RETURN are valid YAML and the options are the module's."""
    import ast

    tree = ast.parse(MODULE.read_text())
    docs = {
        node.targets[0].id: yaml.safe_load(node.value.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }
    assert set(docs["DOCUMENTATION"]["options"]) == {
        "src",
        "policy",
        "policy_file",
        "dest",
        "strict",
        "renders",
    }
    assert {
        name: value["support"] for name, value in docs["DOCUMENTATION"]["attributes"].items()
    } == {"check_mode": "full", "diff_mode": "full", "idempotent": "full"}
    for option in docs["DOCUMENTATION"]["options"].values():
        assert option["type"] and option["description"]
    assert set(docs["RETURN"]) == {"rendered", "warnings_list", "errors", "dest", "pods"}
    for task in docs["EXAMPLES"]:
        args = task["webhosting.pods.pod_spec"]
        assert args.get("src") or all(r["src"] for r in args["renders"])


def test_renders_many_in_one_call_and_reports_a_bad_one_by_name(tmp_path, hosting):
    policy = yaml.safe_load(hosting["policy_text"])
    bad_src = tmp_path / "bad.yaml"
    bad_src.write_text(PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0"))
    bad_dest = tmp_path / "bad-rendered.yaml"
    bad_dest.write_text("last good\n")
    renders = [
        {
            "name": "good",
            "src": hosting["src"],
            "policy": policy,
            "dest": hosting["dest"],
            "mode": "0600",
        },
        {"name": "bad", "src": str(bad_src), "policy": policy, "dest": str(bad_dest)},
    ]
    dry = run_module(tmp_path, renders=renders, _ansible_check_mode=True)
    assert dry["changed"] is True and not os.path.exists(hosting["dest"])
    out = run_module(tmp_path, renders=renders)
    assert not out.get("failed"), out
    assert out["pods"]["good"]["changed"] is True and out["pods"]["good"]["errors"] == []
    with open(hosting["dest"]) as handle:
        assert handle.read() == expected_text(hosting)
    assert stat.S_IMODE(os.stat(hosting["dest"]).st_mode) == 0o600
    bad = out["pods"]["bad"]
    assert bad["changed"] is False
    assert bad["errors"] == [
        "spec.containers[0].securityContext.runAsUser: 0 (root) is not allowed"
    ]
    assert bad["msg"].startswith("%s: 1 error in the pod spec" % bad_src)
    assert bad_dest.read_text() == "last good\n"
    again = run_module(tmp_path, renders=renders[:1])
    assert again["changed"] is False
    mixed = run_module(tmp_path, renders=renders, src=hosting["src"])
    assert mixed["failed"] and "mutually exclusive" in mixed["msg"]


def kept_render(tmp_path, hosting):
    """(policy, last valid file, the render item) of the provider's example with a last
    valid copy in tmp_path, as the role asks for it."""
    policy = yaml.safe_load(hosting["policy_text"])
    last = tmp_path / "pod.input.yaml"
    render = {
        "name": "shop",
        "src": hosting["src"],
        "policy": policy,
        "dest": hosting["dest"],
        "last_valid": str(last),
        "mode": "0600",
    }
    return policy, last, render


def test_last_valid_is_kept_and_rendered_when_the_tenants_file_breaks(tmp_path, hosting):
    """As the pod unit does at every start: the tenant's file, else its last valid version
    checked again; neither (the policy or the file system changed): a failure."""
    policy, last, render = kept_render(tmp_path, hosting)
    dry = run_module(tmp_path, renders=[render], _ansible_check_mode=True)
    assert dry["changed"] and not last.exists()
    out = run_module(tmp_path, renders=[render])
    assert out["pods"]["shop"]["changed"] and last.read_text() == PROVIDER_POD
    assert stat.S_IMODE(last.stat().st_mode) == 0o600
    assert not run_module(tmp_path, renders=[render])["changed"]

    # the tenant breaks the file: the last valid one is rendered again, the errors reported
    with open(hosting["src"], "w") as handle:
        handle.write(PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0"))
    out = run_module(tmp_path, renders=[render])["pods"]["shop"]
    assert out["fallback"] is True and "msg" not in out
    assert out["invalid"] == [
        "spec.containers[0].securityContext.runAsUser: 0 (root) is not allowed"
    ]
    assert last.read_text() == PROVIDER_POD
    with open(hosting["dest"]) as handle:
        assert handle.read() == expected_text(hosting)

    # the admin tightens the policy: the last valid version fails too
    tight = dict(policy, allowed_registries=["registry.example.net"])
    out = run_module(tmp_path, renders=[dict(render, policy=tight)])["pods"]["shop"]
    assert out["last_valid"] is True
    assert "no longer validates either" in out["msg"]
    assert "allowed_registries" in out["msg"] or "registry" in out["msg"]

    # no copy yet (a host set up by an older release): a plain failure, saying so
    last.unlink()
    out = run_module(tmp_path, renders=[render])["pods"]["shop"]
    assert out["last_valid"] is False and "msg" in out


def test_a_broken_tenant_env_file_falls_back_with_the_kept_one(tmp_path, hosting):
    """A converge after the tenant broke their env file keeps the pod as it runs: the last
    valid pod file with the env file it was valid with (kept beside it)."""
    policy, _last, render = kept_render(tmp_path, hosting)
    env_file = Path(policy["container_env_dir"]) / "mycontainertest-mywebserver.env"
    env_file.write_text("TENANT=kept\n")
    assert run_module(tmp_path, renders=[render])["changed"]
    good = Path(hosting["dest"]).read_text()
    assert "TENANT" in good
    assert (tmp_path / env_file.name).read_text() == "TENANT=kept\n"
    assert not run_module(tmp_path, renders=[render])["changed"]
    env_file.write_text("not a setting\n")
    out = run_module(tmp_path, renders=[render])["pods"]["shop"]
    assert out["fallback"] is True and "msg" not in out, out
    assert any(":1: expected KEY=VALUE" in line for line in out["invalid"])
    assert Path(hosting["dest"]).read_text() == good
    assert (tmp_path / env_file.name).read_text() == "TENANT=kept\n"


def test_a_pod_file_that_is_a_symlink_is_not_read(tmp_path, hosting):
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    os.unlink(hosting["src"])
    os.symlink(secret, hosting["src"])
    out = run_module(tmp_path, **args_of(hosting))
    assert out["failed"] and "is a symlink" in out["msg"]
    assert "root only" not in json.dumps(out)


def test_a_link_planted_as_the_rendered_pod_is_replaced_not_followed(tmp_path, hosting):
    """The rendered pod lies in the hosting user's state directory: a symlink there (to a
    file of root's) is replaced by the new file, and the link's target keeps its content,
    owner and mode."""
    victim = tmp_path / "victim"
    victim.write_text("root's\n")
    os.chmod(victim, 0o644)
    os.symlink(victim, hosting["dest"])
    out = run_module(tmp_path, mode="0600", **args_of(hosting))
    assert out["changed"] is True and not out.get("failed"), out
    assert not os.path.islink(hosting["dest"])
    assert victim.read_text() == "root's\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert stat.S_IMODE(os.stat(hosting["dest"]).st_mode) == 0o600


def test_an_engine_bug_in_one_render_fails_that_render_alone(tmp_path, hosting):
    """Fault injection: once the engine is fixed, no real input raises anything but
    PodSpecError (test_pod_policy_fuzz.py), so the next bug is simulated. A sitecustomize
    makes render_pod raise RecursionError for one file; the module still renders the
    other, and reports the first under its name with its file and the exception."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import ansible_collections.webhosting.pods.plugins.module_utils.pod_policy as engine\n"
        "real = engine.render_pod\n"
        "def render_pod(text, policy, strict=False):\n"
        "    if b'crash-me' in (text if isinstance(text, bytes) else text.encode()):\n"
        "        raise RecursionError('maximum recursion depth exceeded')\n"
        "    return real(text, policy, strict=strict)\n"
        "engine.render_pod = render_pod\n"
    )
    policy = yaml.safe_load(hosting["policy_text"])
    crash = tmp_path / "crash.yaml"
    crash.write_text(PROVIDER_POD.replace("metadata:", "metadata:\n  labels: {x: crash-me}", 1))
    renders = [
        {"name": "crash", "src": str(crash), "policy": policy, "dest": str(tmp_path / "c.yaml")},
        {"name": "good", "src": hosting["src"], "policy": policy, "dest": hosting["dest"]},
    ]
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"renders": renders}}))
    script = (
        "import runpy, sys; sys.argv = [sys.argv[1], sys.argv[2]];"
        " import sitecustomize;"
        " runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH="%s:%s" % (inject, COLLECTIONS)),
        timeout=60,
    )
    out = json.loads(completed.stdout)
    assert not out.get("failed"), out
    assert out["pods"]["good"]["changed"] is True
    crashed = out["pods"]["crash"]
    assert crashed["msg"] == (
        "%s: cannot be checked (RecursionError: maximum recursion depth exceeded);"
        " the pod keeps what it runs" % crash
    )
    assert not os.path.exists(tmp_path / "c.yaml")
