"""The pages a tenant or an admin reads: links that lead somewhere, and no internal
references in the tenants' pages (issue numbers, the lab's hosts, domains and paths, the
test suite)."""

import re

import pytest
from podspec_helpers import ROOT

TENANT_PAGES = ["docs/tenant.md", "docs/pod-policy.md", "docs/userpod.md"]
CHECKED_PAGES = TENANT_PAGES + [
    "docs/install.md",
    "docs/hostings.md",
    "docs/system-policy.md",
    "README.md",
]
INTERNAL = [
    r"\bissues?\s*#?\d+",
    r"\bexample\.test\b",
    r"\blabctl\b",
    r"\bmolecule\b",
    r"/root/",
    r"\btests/",
    r"\blab/",
    r"\bPebble\b",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


@pytest.mark.parametrize("page", TENANT_PAGES)
def test_tenant_pages_have_no_internal_references(page):
    text = (ROOT / page).read_text()
    # the providers' part of userpod.md may name the checkout's make target
    text = text.split("## For providers")[0]
    found = [
        "%s: %s" % (pattern, m.group(0))
        for pattern in INTERNAL
        for m in re.finditer(pattern, text, re.I)
    ]
    assert found == []


@pytest.mark.parametrize("page", CHECKED_PAGES)
def test_links_lead_to_a_page_and_a_heading(page):
    path = ROOT / page
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert broken == []
