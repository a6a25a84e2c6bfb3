"""Every Pod the tenant docs show is checked by the engine, as a tenant checks it.

docs/tenant.md and docs/pod-policy.md: each fenced ```yaml block that is a Pod
(``kind: Pod``) goes through ``bin/userpod parse`` with the provider's system.yaml
(tests/unit/podspec_helpers.py), its hosting moved to a temporary folder and named after the
example's pod, and every hostPath folder the example mounts made there first (as the page
tells the tenant to do over SFTP). An HTML comment on the line before a block says what the
block is meant to show:

- none: the pod is valid without a single warning (``parse --strict`` exits 0);
- ``<!-- warnings -->``: valid, with at least one warning;
- ``<!-- invalid: TEXT -->``: refused (exit 1), with an error line that contains TEXT.

(docs/userpod.md's examples are run by tests/unit/bin/test_userpod_zipapp.py.)
"""

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


@pytest.mark.parametrize("body, document, expect", EXAMPLES)
def test_pod_example(body, document, expect, tmp_path):
    kind, text = expect
    (tmp_path / "pod.yaml").write_text(body)
    (tmp_path / "system.yaml").write_text(hosting_for(document, tmp_path / "hosting"))
    strict = userpod("parse", "--strict", "pod.yaml", "system.yaml", cwd=tmp_path)
    assert "Traceback" not in strict.stderr
    if kind == "valid":
        assert strict.returncode == 0, strict.stderr
        return
    result = userpod("parse", "pod.yaml", "system.yaml", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if kind == "warnings":
        assert result.returncode == 0, result.stderr
        assert "warning: " in result.stderr and errors == []
        return
    assert kind == "invalid" and text, "an invalid example names the error it shows"
    assert result.returncode == 1, result.stdout
    assert any(text in line for line in errors), result.stderr
