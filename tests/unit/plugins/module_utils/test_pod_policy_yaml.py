"""Safe loading: one plain YAML document, no Python objects, no bombs."""

import time

import pod_policy
import pytest
from pod_policy import yamlsafe
from podspec_helpers import make_hosting, outcome, shop_policy, to_yaml

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
# Doubling with few aliases: 2 aliases a level, 30 levels = 60 aliases, 2**30 nodes.
DOUBLING = "l0: &l0 [x, x]\n" + "".join(
    "l%d: &l%d [*l%d, *l%d]\n" % (i, i, i - 1, i - 1) for i in range(1, 31)
)


@pytest.fixture(params=["libyaml", "python"])
def reader(request, monkeypatch):
    """Run with libyaml's parser and with PyYAML's pure-Python one (hosts without libyaml)."""
    if request.param == "python":
        monkeypatch.setattr(yamlsafe, "_READER", yamlsafe._PyEventReader)
    return request.param


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return shop_policy(make_hosting(tmp_path_factory.mktemp("hosting") / "shop"))


def load(text):
    try:
        return yamlsafe._load_yaml(text, "document")
    except pod_policy.PodSpecError as exc:
        return exc.errors


# (id, document, exact errors)
REFUSED = [
    ("empty", "", ["document: is empty"]),
    ("only-a-comment", "# nothing\n", ["document: is empty"]),
    ("not-utf8", b"kind: \xff\xfe", ["document: not valid UTF-8 text (byte 6)"]),
    ("nul", "kind: Pod\x00", ["document: contains a NUL character; is this a text file?"]),
    (
        "control-character",
        'kind: "\x01"',
        {
            "libyaml": [
                "document: character #x0001 at position 7 is not allowed in YAML (control "
                "characters are not allowed)"
            ],
            "python": [
                "document: character #x0001 at position 7 is not allowed in YAML (special "
                "characters are not allowed)"
            ],
        },
    ),
    ("too-large-text", "#" * (256 * 1024 + 1), ["document: larger than 262144 bytes"]),
    ("too-large-bytes", b"#" * (256 * 1024 + 1), ["document: larger than 262144 bytes"]),
    (
        "too-large-multibyte",
        "#" + "\u00e9" * (128 * 1024),
        ["document: larger than 262144 bytes"],
    ),
    ("not-text", 42, ["document: must be YAML text, got an integer"]),
    (
        "two-documents",
        "kind: Pod\n---\nkind: Pod\n",
        ["document: more than one YAML document; the file must hold exactly one"],
    ),
    (
        "syntax",
        "spec:\n  containers: [a, b\n",
        {
            "libyaml": [
                "document: line 3, column 1: did not find expected ',' or ']' (while parsing a "
                "flow sequence)"
            ],
            "python": [
                "document: line 3, column 1: expected ',' or ']', but got '<stream end>' (while "
                "parsing a flow sequence)"
            ],
        },
    ),
    (
        "billion-laughs",
        BILLION_LAUGHS,
        [
            "document: line 5, column 14: more than 20000 nodes once aliases are expanded; YAML "
            "bombs are refused"
        ],
    ),
    (
        "doubling-bomb",
        DOUBLING,
        [
            "document: line 13, column 22: more than 20000 nodes once aliases are expanded; YAML "
            "bombs are refused"
        ],
    ),
    (
        "many-aliases",
        "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n",
        ["document: line 2, column 405: more than 100 aliases; YAML bombs are refused"],
    ),
    (
        "recursive-alias",
        "a: &a [x, *a]\n",
        ["document: line 1, column 11: alias *a refers to a node that contains it"],
    ),
    (
        "undefined-alias",
        "a: *nowhere\n",
        ["document: line 1, column 4: undefined alias *nowhere"],
    ),
    (
        "deep-flow",
        "[" * 100000 + "]" * 100000,
        ["document: line 1, column 41: nested deeper than 40 levels"],
    ),
    (
        "deep-block",
        "- " * 100000 + "x\n",
        ["document: line 1, column 81: nested deeper than 40 levels"],
    ),
    (
        "deep-through-aliases",
        "a: &a " + "[" * 30 + "x" + "]" * 30 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
        ["document: line 2, column 44: nested deeper than 40 levels"],
    ),
    (
        "python-object",
        "kind: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        [
            "kind: unsupported YAML tag !!python/object/apply:os.system (line 1); only plain YAML "
            "data is accepted"
        ],
    ),
    (
        "python-object-new",
        "spec: !!python/object/new:subprocess.Popen [[id]]\n",
        [
            "spec: unsupported YAML tag !!python/object/new:subprocess.Popen (line 1); only plain "
            "YAML data is accepted"
        ],
    ),
    (
        "python-name",
        "kind: !!python/name:os.system\n",
        [
            "kind: unsupported YAML tag !!python/name:os.system (line 1); only plain YAML data is "
            "accepted"
        ],
    ),
    (
        "root-tag",
        "!!python/object:collections.OrderedDict {}\n",
        [
            "document: unsupported YAML tag !!python/object:collections.OrderedDict (line 1); only "
            "plain YAML data is accepted"
        ],
    ),
    (
        "binary-set-timestamp-custom",
        "a: !!binary aGk=\nb: !!set {x}\nc: !!timestamp 2024-01-01\nd: !local x\n",
        [
            "a: unsupported YAML tag !!binary (line 1); only plain YAML data is accepted",
            "b: unsupported YAML tag !!set (line 2); only plain YAML data is accepted",
            "c: unsupported YAML tag !!timestamp (line 3); only plain YAML data is accepted",
            "d: unsupported YAML tag !local (line 4); only plain YAML data is accepted",
        ],
    ),
    (
        "nested-tag-path",
        "spec:\n  containers:\n  - image: !!python/str x\n",
        [
            "spec.containers[0].image: unsupported YAML tag !!python/str (line 3); only plain YAML "
            "data is accepted"
        ],
    ),
    (
        "bad-explicit-int",
        'a: !!int "x"\n',
        ['a: "x" is not a valid !!int (line 1)'],
    ),
    (
        "duplicate-key",
        "spec:\n  containers:\n  - image: a\n    image: b\n",
        ["spec.containers[0].image: duplicate key (line 4)"],
    ),
    ("duplicate-top-key", "kind: Pod\nkind: Pod\n", ["kind: duplicate key (line 2)"]),
    (
        "complex-key",
        "? [a, b]\n: c\n",
        ["document[?]: complex mapping keys are not supported (line 1)"],
    ),
    (
        "bad-merge",
        "a:\n  <<: [x]\n",
        ['a["<<"]: must be a mapping or a list of mappings (line 2)'],
    ),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused(reader, text, expected):
    """``expected`` is the exact error list, or {parser: list} where the wording comes from
    the YAML parser itself."""
    if isinstance(expected, dict):
        expected = expected[reader]
    assert load(text) == expected


def test_policy_documents_are_refused_with_the_policy_prefix():
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.load_policy("name: !!python/object/apply:os.system [id]\n")
    assert caught.value.errors == [
        "policy.name: unsupported YAML tag !!python/object/apply:os.system (line 1); only plain "
        "YAML data is accepted"
    ]
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.load_policy(BILLION_LAUGHS)
    assert caught.value.errors[0].startswith("policy: line 5, column 14: more than 20000 nodes")


@pytest.mark.parametrize("text", [BILLION_LAUGHS, DOUBLING, "[" * 200000 + "]" * 200000])
def test_bombs_are_refused_in_milliseconds(reader, text, policy):
    start = time.perf_counter()
    with pytest.raises(pod_policy.PodSpecError):
        pod_policy.render_pod(text, policy)
    assert time.perf_counter() - start < 0.1


def test_a_tag_never_runs_code(tmp_path, policy):
    marker = tmp_path / "pwned"
    text = "kind: !!python/object/apply:os.system ['touch %s']\n" % marker
    errors, _ = outcome(text, policy)
    assert errors and not marker.exists()


# (id, document, the plain data it loads as)
ACCEPTED = [
    (
        "dates-stay-strings",
        "a: 2024-01-01\nb: 2001-12-14t21:59:43.10-05:00\n",
        {"a": "2024-01-01", "b": "2001-12-14t21:59:43.10-05:00"},
    ),
    ("equals-sign", "a: =\n", {"a": "="}),
    (
        "yaml11-scalars",
        "a: yes\nb: 0x1F\nc: 1:20\nd: ~\ne: 1.5\nf: .inf\n",
        {"a": True, "b": 31, "c": 80, "d": None, "e": 1.5, "f": float("inf")},
    ),
    ("explicit-str", "a: !!str 12\nb: ! 12\n", {"a": "12", "b": "12"}),
    ("byte-order-mark", "\ufeffkind: Pod\n", {"kind": "Pod"}),
    ("bytes", b"kind: Pod\n", {"kind": "Pod"}),
    (
        "merge-keys",
        "b: &b {x: 1, y: 0}\nm:\n  <<: [*b, {x: 5, z: 3}]\n  y: 2\n",
        {"b": {"x": 1, "y": 0}, "m": {"x": 1, "y": 2, "z": 3}},
    ),
    ("merge-key-as-value", "a: <<\nb: [<<]\n", {"a": "<<", "b": ["<<"]}),
    (
        "anchors-within-limits",
        "a: &a {k: v}\nb: [*a, *a]\n",
        {"a": {"k": "v"}, "b": [{"k": "v"}, {"k": "v"}]},
    ),
    ("document-markers", "---\nkind: Pod\n...\n", {"kind": "Pod"}),
    ("scalar-document", "just text\n", "just text"),
    (
        "nested-40",
        "[" * 39 + "]" * 39,
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted(reader, text, expected):
    assert load(text) == expected


def test_large_plain_document_is_fine(policy):
    env = [{"name": "VAR_%d" % i, "value": "x" * 20} for i in range(2000)]
    from podspec_helpers import patched, shop_pod

    errors, warnings = outcome(patched(shop_pod(), {"spec.containers[0].env": env}), policy)
    assert (errors, warnings) == ([], [])


def test_loader_matches_pyyaml_safe_load_on_plain_documents():
    import yaml

    text = to_yaml({"a": [1, "2", {"b": None, "c": True}], "d": "x: y", "e": 1.25, "f": ""})
    assert load(text) == yaml.safe_load(text)
