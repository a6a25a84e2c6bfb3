"""The pages a tenant or an admin reads: links that lead somewhere, no internal references,
and the tenant's file names as the provider's tenant documentation names them.

User pages are read by the provider's admins (README.md, docs/install.md) and by tenants
(docs/tenant.md, docs/userpod.md, docs/pod-policy.md), who have the installed collection
or ``userpod.pyz``, never this repository's lab, its test suite or its issue tracker. So
none of that may appear there: an issue number ("issue 12", "#12"), the lab's tools, hosts,
domains, CA and cache paths (labctl, molecule, mol-bookworm, example.test, Pebble,
/var/cache/webhosting-pods-lab), the checkout's tests/ and lab/.

The one exception is a section explicitly for developers: a heading that starts with
"For developers" (README.md's "For developers of this collection", which explains the lab
and where the code lives to people working in a checkout). It is left out of the check
with everything under it, down to the next heading of the same or a higher level. Nothing
else is exempt: a section for providers is still read outside the checkout.
"""

import re

import pytest
from podspec_helpers import ROOT

USER_PAGES = [
    "docs/tenant.md",
    "docs/userpod.md",
    "docs/pod-policy.md",
    "docs/install.md",
    "README.md",
]
CHECKED_PAGES = USER_PAGES + [
    "docs/hostings.md",
    "docs/system-policy.md",
    "docs/upgrading.md",
    "docs/architecture.md",
]
INTERNAL = [
    r"\bissues?\s*#?\d+",
    r"(?<![\w&/])#\d+\b",  # "#12"; not "&#12;" nor an anchor such as "(#logs)"
    r"\bexample\.test\b",
    r"\blabctl\b",
    r"\bmolecule\b",
    r"\bmol-[a-z0-9]+",
    r"/var/cache/webhosting-pods-lab",
    r"/root/",
    r"\btests/",
    r"\blab/",
    r"\bPebble\b",
]
DEVELOPER_HEADING = re.compile(r"For developers\b", re.I)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def sections(text):
    """[(heading, level, text)] of a Markdown page: the text before the first heading has
    the heading "" and level 0. Lines in fenced code blocks are never headings (a ``#``
    comment in an example is not one)."""
    found = [["", 0, []]]
    fence = None
    for line in text.splitlines():
        marker = re.match(r"\s*(```|~~~)", line)
        if marker and fence is None:
            fence = marker.group(1)
        elif marker and line.strip() == fence:
            fence = None
        heading = re.match(r"(#{1,6}) (.*)", line) if fence is None else None
        if heading:
            found.append([heading.group(2).strip(), len(heading.group(1)), []])
        found[-1][2].append(line)
    return [(heading, level, "\n".join(lines)) for heading, level, lines in found]


def user_text(page):
    """The page without its sections for developers (see the module's docstring)."""
    kept, skip_below = [], None
    for heading, level, text in sections((ROOT / page).read_text()):
        if skip_below is not None and level > skip_below:
            continue
        skip_below = level if DEVELOPER_HEADING.match(heading) else None
        if skip_below is None:
            kept.append(text)
    return "\n".join(kept)


def test_sections_leave_out_a_developer_section_and_nothing_else():
    text = "intro\n## Use\nlabctl one\n## For developers\nlabctl two\n### Lab\nlabctl three\n"
    text += "```\n# not a heading\n```\n## Licence\nfour\n"
    parsed = sections(text)
    assert [(h, lvl) for h, lvl, _ in parsed] == [
        ("", 0),
        ("Use", 2),
        ("For developers", 2),
        ("Lab", 3),
        ("Licence", 2),
    ]


def test_the_readme_keeps_its_developer_section_apart():
    """README.md's lab and code map sit under one heading for developers."""
    headings = [heading for heading, _, _ in sections((ROOT / "README.md").read_text())]
    assert any(DEVELOPER_HEADING.match(heading) for heading in headings)
    assert "make demo" not in user_text("README.md")


@pytest.mark.parametrize("page", USER_PAGES)
def test_user_pages_have_no_internal_references(page):
    text = user_text(page)
    found = [
        "%s: %s" % (pattern, m.group(0))
        for pattern in INTERNAL
        for m in re.finditer(pattern, text, re.I)
    ]
    assert found == []


@pytest.mark.parametrize("page", USER_PAGES)
def test_user_pages_use_the_tenant_file_names(page):
    """The tenant's files are pod-<pod>.yaml and system-<pod>.yaml. The old names
    pod.yaml and system.yaml appear only where a page says what changed (docs/tenant.md,
    "Differences from the earlier container hosting"); `<name>.pod.yaml` (the rendered pod
    userpod start writes) is another file."""
    old = re.compile(r"(?<![-\w./<>])(pod|system)\.yaml\b")
    found = []
    for heading, _, text in sections((ROOT / page).read_text()):
        if heading.startswith("Differences from the earlier"):
            continue
        found += ["%s: %s" % (heading, m.group(0)) for m in old.finditer(text)]
    assert found == []


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


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
