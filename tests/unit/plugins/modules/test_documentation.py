"""Every module's DOCUMENTATION says what its argument spec does: the same options and
suboptions, with the same type, elements, default, choices and required flags.

The argument spec is taken from the module itself: main() runs with AnsibleModule replaced
by a stand-in that records the spec and stops, so nothing else of the module runs.
"""

import ast
import importlib
from pathlib import Path

import pytest
import yaml

MODULES = Path(__file__).resolve().parents[4] / "plugins" / "modules"
NAMES = sorted(p.stem for p in MODULES.glob("*.py") if p.stem != "__init__")


class _Recorded(Exception):
    pass


def argument_spec(name, monkeypatch):
    module = importlib.import_module(f"ansible_collections.webhosting.pods.plugins.modules.{name}")
    seen = {}

    def record(argument_spec, **kwargs):
        seen.update(argument_spec)
        raise _Recorded

    monkeypatch.setattr(module, "AnsibleModule", record)
    with pytest.raises(_Recorded):
        module.main()
    return seen


def documented(name):
    tree = ast.parse((MODULES / f"{name}.py").read_text())
    docs = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    for key in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert key in docs, f"{name}: no {key}"
        yaml.safe_load(docs[key])  # valid YAML
    return yaml.safe_load(docs["DOCUMENTATION"])


def _compare(where, doc_options, spec, top=None):
    """Problems between documented options and the spec. A suboption documented as
    "As O(NAME)." without suboptions of its own has those of the top-level option NAME."""
    top = doc_options if top is None else top
    problems = []
    if set(doc_options) != set(spec):
        problems.append(
            f"{where}: documented {sorted(set(doc_options) - set(spec))} but not in the spec,"
            f" in the spec {sorted(set(spec) - set(doc_options))} but not documented"
        )
    for key in set(doc_options) & set(spec):
        doc, arg = doc_options[key], spec[key]
        here = f"{where}.{key}"
        if not doc.get("description"):
            problems.append(f"{here}: no description")
        for field, fallback in (
            ("type", "str"),
            ("elements", None),
            ("default", None),
            ("choices", None),
            ("required", False),
        ):
            if doc.get(field, fallback) != arg.get(field, fallback):
                problems.append(
                    f"{here}.{field}: documented {doc.get(field)!r}, spec {arg.get(field)!r}"
                )
        if "options" in arg or "suboptions" in doc:
            subs = doc.get("suboptions")
            alias = str(doc.get("description", "")).strip()
            if subs is None and alias.startswith("As O(") and alias.endswith(")."):
                subs = top.get(alias[5:-2], {}).get("suboptions")
            problems += _compare(here, subs or {}, arg.get("options", {}), top)
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_documentation_matches_the_argument_spec(name, monkeypatch):
    docs = documented(name)
    assert docs["module"] == name
    spec = argument_spec(name, monkeypatch)
    assert _compare(name, docs.get("options", {}), spec) == []
    for attribute in ("check_mode", "diff_mode", "idempotent"):
        assert docs["attributes"][attribute]["support"] in ("full", "partial", "none")
