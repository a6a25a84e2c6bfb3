"""Every Pod, env file and registry logins file the tenant docs show is checked, as a
tenant checks it, under the names the tenant's files have (``pod-<pod>.yaml``,
``system-<pod>.yaml``, ``<pod>-<container>.env``, ``auth-<pod>-registry.yaml``).

docs/tenant.md and docs/pod-policy.md: each fenced ```yaml block that is a Pod
(``kind: Pod``) goes through ``bin/userpod parse`` with the provider's system file
(tests/unit/podspec_helpers.py), its hosting moved to a temporary folder and named after the
example's pod, and every hostPath folder the example mounts made there first (as the page
tells the tenant to do over SFTP). An HTML comment on the line before a block says what the
block is meant to show:

- none: the pod is valid without a single warning (``parse --strict`` exits 0);
- ``<!-- warnings -->``: valid, with at least one warning;
- ``<!-- invalid: TEXT -->``: refused (exit 1), with an error line that contains TEXT.

An env file the pages show (a block whose first line is the comment
``# <pod>-<container>.env``) is given to a container of that name in a small valid pod,
which must then pass ``parse --strict`` and name the env file in its summary. A registry
logins file (a ```yaml block whose first line is ``# auth-<pod>-registry.yaml``) must pass
``userpod auth``, which must name every registry of the block.

(docs/userpod.md's examples are run by tests/unit/bin/test_userpod_zipapp.py.)
"""

import json
import re
import subprocess
import sys

import pytest
import yaml
from podspec_helpers import PROVIDER_BASE, PROVIDER_SYSTEM, ROOT, USERPOD

PAGES = ["docs/tenant.md", "docs/pod-policy.md"]
MARKER = re.compile(r"<!--\s*(invalid|warnings)\s*(?::\s*(.*?))?\s*-->")


def fenced_blocks(text):
    """[(line number, info string, body, the last non-blank line before the block)]."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        match = re.fullmatch(r"( *)```(\S*).*", lines[i])
        if not match:
            i += 1
            continue
        indent, info, start = len(match.group(1)), match.group(2), i
        before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        assert i < len(lines), "a code block opened on line %d is not closed" % (start + 1)
        blocks.append((start + 1, info, "\n".join(body) + "\n", before))
        i += 1
    return blocks


def pod_examples():
    """pytest params: one per Pod of the pages, with its marker."""
    params = []
    for page in PAGES:
        for line, info, body, before in fenced_blocks((ROOT / page).read_text()):
            if info != "yaml":
                continue
            document = yaml.safe_load(body)
            if not (isinstance(document, dict) and document.get("kind") == "Pod"):
                continue
            marker = MARKER.fullmatch(before)
            expect = (marker.group(1), marker.group(2)) if marker else ("valid", None)
            params.append(pytest.param(body, document, expect, id="%s:%d" % (page, line)))
    return params


EXAMPLES = pod_examples()


def test_the_pages_have_pod_examples_of_every_kind():
    assert len(EXAMPLES) >= 5
    kinds = {param.values[2][0] for param in EXAMPLES}
    assert kinds == {"valid", "warnings", "invalid"}
    for page in PAGES:
        assert any(param.id.startswith(page + ":") for param in EXAMPLES), page


@pytest.mark.parametrize("page", PAGES)
def test_every_marker_stands_before_a_pod(page):
    """A marker that no longer stands right before a Pod block checks nothing: an error."""
    lines = (ROOT / page).read_text().splitlines()
    pods = {int(param.id.rsplit(":", 1)[1]) for param in EXAMPLES if param.id.startswith(page)}
    for number, line in enumerate(lines, 1):
        if MARKER.fullmatch(line.strip()):
            following = next(n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip())
            assert following in pods, "%s:%d: the marker is not right before a Pod" % (page, number)
        else:
            assert "<!-- invalid" not in line and "<!-- warnings" not in line, (page, number)


def hosting_for(document, base):
    """The provider's system.yaml for a hosting at ``base`` named after the example's pod,
    with every hostPath folder the example mounts."""
    name = (document.get("metadata") or {}).get("name") or "mycontainertest"
    for volume in (document.get("spec") or {}).get("volumes") or []:
        path = (volume.get("hostPath") or {}).get("path")
        if isinstance(path, str) and ".." not in path.split("/"):
            (base / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (base / "tmp" / "run").mkdir(parents=True, exist_ok=True)
    policy = PROVIDER_SYSTEM.replace(PROVIDER_BASE, str(base))
    return policy.replace("'mycontainertest'", "'%s'" % name)


def userpod(*args, cwd):
    return subprocess.run(
        [sys.executable, str(USERPOD), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def tenant_files(document):
    """The names of the tenant's pod file and system file for the example's pod."""
    name = (document.get("metadata") or {}).get("name") or "mycontainertest"
    return "pod-%s.yaml" % name, "system-%s.yaml" % name


@pytest.mark.parametrize("body, document, expect", EXAMPLES)
def test_pod_example(body, document, expect, tmp_path):
    kind, text = expect
    pod_file, system_file = tenant_files(document)
    (tmp_path / pod_file).write_text(body)
    (tmp_path / system_file).write_text(hosting_for(document, tmp_path / "hosting"))
    strict = userpod("parse", "--strict", pod_file, system_file, cwd=tmp_path)
    assert "Traceback" not in strict.stderr
    if kind == "valid":
        assert strict.returncode == 0, strict.stderr
        return
    result = userpod("parse", pod_file, system_file, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if kind == "warnings":
        assert result.returncode == 0, result.stderr
        assert "warning: " in result.stderr and errors == []
        return
    assert kind == "invalid" and text, "an invalid example names the error it shows"
    assert result.returncode == 1, result.stdout
    assert any(text in line for line in errors), result.stderr


# ---------------------------------------------------------------------------------------------
# Env files and registry logins
# ---------------------------------------------------------------------------------------------
ENV_NAME = re.compile(r"# ([a-z][a-z0-9]*)-([a-z][a-z0-9-]*)\.env\b.*")
AUTH_NAME = re.compile(r"# (auth-([a-z][a-z0-9-]*)-registry\.yaml)\b.*")


def named_blocks(pattern, info):
    """pytest params: (match of the first line, body) of each block with that info string
    whose first line matches ``pattern``. The pod's name is taken to be the part before the
    first ``-`` of an env file's name (the pages' hostings have none)."""
    params = []
    for page in PAGES:
        for line, block_info, body, _before in fenced_blocks((ROOT / page).read_text()):
            first = body.splitlines()[0] if body.strip() else ""
            match = pattern.fullmatch(first.strip())
            if block_info == info and match:
                params.append(pytest.param(match.groups(), body, id="%s:%d" % (page, line)))
    return params


ENV_EXAMPLES = named_blocks(ENV_NAME, "")
AUTH_EXAMPLES = named_blocks(AUTH_NAME, "yaml")


def test_the_pages_show_env_files_and_registry_logins():
    pages = {param.id.rsplit(":", 1)[0] for param in ENV_EXAMPLES}
    assert "docs/tenant.md" in pages
    assert any(param.id.startswith("docs/tenant.md:") for param in AUTH_EXAMPLES)


@pytest.mark.parametrize("names, body", ENV_EXAMPLES)
def test_env_file_example(names, body, tmp_path):
    """The env file, given to its container: every line is KEY=VALUE (a broken one is an
    error naming the file and line), and the file is used."""
    pod_name, container = names
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name},
        "spec": {
            "containers": [
                {
                    "name": container,
                    "image": "docker.io/library/busybox:1",
                    "securityContext": {"runAsUser": 1000},
                    "ports": [{"containerPort": 8080}],
                }
            ]
        },
    }
    pod_file, system_file = tenant_files(pod)
    (tmp_path / pod_file).write_text(yaml.safe_dump(pod))
    (tmp_path / system_file).write_text(hosting_for(pod, tmp_path / "hosting"))
    env_file = tmp_path / "hosting" / ("%s-%s.env" % (pod_name, container))
    env_file.write_text(body)
    result = userpod("parse", "--strict", pod_file, system_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "env file: %s" % env_file in result.stdout


@pytest.mark.parametrize("names, body", AUTH_EXAMPLES)
def test_registry_logins_example(names, body, tmp_path):
    """The registry logins file passes `userpod auth`, which writes podman's auth.json
    with a login for every registry of the example."""
    file_name, _pod = names
    (tmp_path / file_name).write_text(body)
    result = userpod("auth", file_name, "--output", "auth.json", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    registries = sorted(yaml.safe_load(body))
    auths = json.loads((tmp_path / "auth.json").read_text())["auths"]
    assert sorted(auths) == registries
