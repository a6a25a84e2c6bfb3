"""dump_pod: every string reaches podman byte for byte.  Podman reads the rendered pod with
go-yaml (YAML 1.1 rules: ``y``, ``off``, ``017``, ``08``, ``1:30`` are not strings there),
other readers use YAML 1.2 rules.  A quoted scalar is a string under every rule set, so the
tests check that every string is emitted quoted (plain only: the engine's own field names,
booleans and integers), and that PyYAML (YAML 1.1) and ruamel.yaml (YAML 1.2) read back
exactly what was dumped."""

import re

import pod_policy
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pod_policy.dump import _PyDumper
from podspec_helpers import C0, make_hosting, patched, shop_pod, shop_policy

try:
    from ruamel.yaml import YAML as _RuamelYAML
except ImportError:  # pragma: no cover - the compat venv has no ruamel.yaml
    _YAML12 = None
else:
    _YAML12 = _RuamelYAML(typ="safe", pure=True)  # YAML 1.2 unless a document says otherwise
    assert _YAML12.version in (None, (1, 2))
_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# What may be plain in a rendered pod: a field name (a letter, then letters and digits, not a
# YAML 1.1 boolean or null word), a boolean, an integer.
_PLAIN_OK = re.compile(r"[A-Za-z][A-Za-z0-9]*|-?[0-9]+", re.ASCII)
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "null"}


def load_all_ways(text):
    """The document as YAML 1.1 readers (PyYAML, libyaml and pure Python) and a YAML 1.2
    reader (ruamel.yaml, when installed) see it; all must agree."""
    loaded = yaml.load(text, Loader=yaml.SafeLoader)
    assert yaml.load(text, Loader=_CLoader) == loaded
    if _YAML12 is not None:
        assert _YAML12.load(text) == loaded
    return loaded


def assert_no_string_is_plain(text):
    """Every scalar a reader could re-type is quoted: a plain scalar is only ever a field
    name, true/false or a decimal integer."""
    for event in yaml.parse(text, Loader=_CLoader):
        if isinstance(event, yaml.ScalarEvent) and not event.style:  # plain: None or ""
            assert _PLAIN_OK.fullmatch(event.value), event.value
            assert event.value.lower() not in _YAML_WORDS, event.value
        elif isinstance(event, yaml.ScalarEvent):
            assert event.style == '"', (event.value, event.style)
        assert not getattr(event, "tag", None), event  # no tags, no anchors
        assert not getattr(event, "anchor", None), event


def to_yaml(document):
    return yaml.dump(
        document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False
    )


def dump_checked(data):
    text = pod_policy.dump_pod(data)
    assert text == pod_policy.dump_pod(data, _PyDumper)  # libyaml's emitter or PyYAML's
    assert load_all_ways(text) == data
    assert_no_string_is_plain(text)
    return text


# (what the tenant means, the line the rendered pod holds)
TRICKY = [
    ("y", '"y"'),
    ("Y", '"Y"'),
    ("n", '"n"'),
    ("N", '"N"'),
    ("yes", '"yes"'),
    ("No", '"No"'),
    ("on", '"on"'),
    ("OFF", '"OFF"'),
    ("true", '"true"'),
    ("False", '"False"'),
    ("null", '"null"'),
    ("Null", '"Null"'),
    ("~", '"~"'),
    ("", '""'),
    ("0o17", '"0o17"'),
    ("017", '"017"'),
    ("08", '"08"'),
    ("0x1F", '"0x1F"'),
    ("0b101", '"0b101"'),
    ("1:30", '"1:30"'),
    ("190:20:30.15", '"190:20:30.15"'),
    ("1_000", '"1_000"'),
    ("+12", '"+12"'),
    ("1e3", '"1e3"'),
    ("6.8523015e+5", '"6.8523015e+5"'),
    (".inf", '".inf"'),
    ("-.Inf", '"-.Inf"'),
    (".NaN", '".NaN"'),
    ("NaN", '"NaN"'),
    ("2001-12-14", '"2001-12-14"'),
    ("2001-12-14t21:59:43.10-05:00", '"2001-12-14t21:59:43.10-05:00"'),
    ("=", '"="'),
    ("<<", '"<<"'),
    (" leading", '" leading"'),
    ("trailing ", '"trailing "'),
    ("# not a comment", '"# not a comment"'),
    ("a #b", '"a #b"'),
    ("key: value", '"key: value"'),
    ("- item", '"- item"'),
    ("[1, 2]", '"[1, 2]"'),
    ("{a: 1}", '"{a: 1}"'),
    ("*alias", '"*alias"'),
    ("&anchor", '"&anchor"'),
    ("!tag", '"!tag"'),
    ("!!python/object:os.system", '"!!python/object:os.system"'),
    ("%YAML 1.1", '"%YAML 1.1"'),
    ("@at", '"@at"'),
    ("`tick`", '"`tick`"'),
    ("|", '"|"'),
    (">", '">"'),
    ("---", '"---"'),
    ("...", '"..."'),
    ("it's", '"it\'s"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("tab\there", '"tab\\there"'),
    ("two\nlines\n", '"two\\nlines\\n"'),
    ("crlf\r\n", '"crlf\\r\\n"'),
    ("nul\x00", '"nul\\0"'),
    ("bell\x07 esc\x1b del\x7f", '"bell\\a esc\\e del\\x7F"'),
    ("nel\x85 ls\u2028 ps\u2029", '"nel\\N ls\\L ps\\P"'),
    ("\ufeffbom", '"\\uFEFFbom"'),
    ("nbsp\xa0", '"nbsp\xa0"'),
    ("ünïcödé ✓", '"ünïcödé ✓"'),
    ("emoji \U0001f600", '"emoji \\U0001F600"'),
    ("$(id) `id` ; rm -rf /", '"$(id) `id` ; rm -rf /"'),
    ("{{ lookup('pipe','id') }}", "\"{{ lookup('pipe','id') }}\""),
]


@pytest.mark.parametrize(
    "value, emitted", TRICKY, ids=[repr(value)[1:-1] or "empty" for value, _ in TRICKY]
)
def test_tricky_values_are_emitted_quoted_and_read_back_exactly(value, emitted):
    text = dump_checked({"env": [{"name": "V", "value": value}], "args": [value]})
    assert text == 'env:\n- name: "V"\n  value: %s\nargs:\n- %s\n' % (emitted, emitted)


@pytest.mark.parametrize("key", ["y", "on", "No", "null", "~", "08", "1:30", "a b", "app/x"])
def test_keys_a_reader_could_retype_are_quoted(key):
    text = dump_checked({key: "v"})
    assert text == '"%s": "v"\n' % key


@pytest.mark.parametrize("key", ["apiVersion", "spec", "runAsUser", "x1", "tier", "nope"])
def test_field_names_stay_plain(key):
    assert dump_checked({key: "v"}) == '%s: "v"\n' % key


def test_typed_values_stay_plain():
    text = dump_checked({"a": True, "b": False, "c": 0, "d": 65535, "e": -1, "f": [], "g": {}})
    assert text == "a: true\nb: false\nc: 0\nd: 65535\ne: -1\nf: []\ng: {}\n"


def test_a_long_value_is_one_line():
    value = "word " * 20000
    text = dump_checked({"args": [value]})
    assert text.count("\n") == 2


@given(value=st.text())
def test_any_string_value_reads_back_exactly(value):
    dump_checked({"value": value, "list": [value, value]})


@given(key=st.text())
def test_any_key_reads_back_exactly(key):
    """Keys a tenant writes (labels) are plain only when no reader can re-type them.  (The
    two emitters may choose a different key syntax for odd keys, so bytes are not compared.)"""
    text = pod_policy.dump_pod({key: "v"})
    assert load_all_ways(text) == {key: "v"}
    assert_no_string_is_plain(text)


LETTERS = "abyYnNoOfFtTlLuxAZ"
field_names = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "019-_./", max_size=8)
)
values = st.recursive(
    st.one_of(st.text(max_size=10), st.booleans(), st.integers(-(2**63), 2**63)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(field_names, inner, max_size=3)
    ),
    max_leaves=10,
)
documents = st.dictionaries(field_names, values, max_size=4)  # a pod is a mapping


@given(document=documents)
def test_any_document_reads_back_exactly(document):
    dump_checked(document)


# ---------------------------------------------------------------------------------------------
# Through the engine: what the tenant wrote is what podman gets
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return shop_policy(make_hosting(tmp_path_factory.mktemp("hosting") / "shop"))


tenant_text = st.text().filter(lambda text: "\x00" not in text)
one_line = st.text().filter(lambda text: not set(text) & {"\x00", "\n", "\r"})


@given(value=tenant_text, arg=tenant_text, command=tenant_text, directory=one_line)
def test_tenant_strings_reach_the_rendered_pod_unchanged(policy, value, arg, command, directory):
    pod = patched(
        shop_pod(),
        {
            C0 + ".env": [{"name": "V", "value": value}],
            C0 + ".args": [arg, value],
            C0 + ".command": [command],
            C0 + ".workingDir": "/srv/x" + directory.replace("/", "_"),
        },
    )
    result = pod_policy.render_pod(to_yaml(pod), policy)
    container = result.pod["spec"]["containers"][0]
    text = pod_policy.dump_pod(container)  # (dump_pod itself: the tests above)
    assert yaml.load(text, Loader=_CLoader) == container
    assert_no_string_is_plain(text)
    assert container["env"] == [{"name": "V", "value": value}]
    assert container["args"] == [arg, value]
    assert container["command"] == [command]
    assert container["workingDir"] == pod["spec"]["containers"][0]["workingDir"]


ALNUM = "aoynYN0178xZ"
label_values = st.one_of(
    st.just(""),
    st.sampled_from(ALNUM),
    st.builds(
        lambda first, middle, last: first + middle + last,
        st.sampled_from(ALNUM),
        st.text(ALNUM + "-_.", max_size=8),
        st.sampled_from(ALNUM),
    ),
)
label_names = st.one_of(
    label_values.filter(bool), st.sampled_from(["y", "n", "on", "off", "no", "null", "0o17"])
)


@given(labels=st.dictionaries(label_names, st.one_of(label_values, st.sampled_from(["y", "08"]))))
def test_labels_reach_the_rendered_pod_unchanged(policy, labels):
    pod = patched(shop_pod(), {"metadata.labels": labels})
    result = pod_policy.render_pod(to_yaml(pod), policy)
    text = pod_policy.dump_pod(result.pod["metadata"])
    assert yaml.load(text, Loader=_CLoader) == result.pod["metadata"]
    assert_no_string_is_plain(text)
    assert result.pod["metadata"].get("labels", {}) == labels


# What PyYAML reads as a string from a tenant's plain (unquoted) scalar, although go-yaml or a
# YAML 1.2 reader would not: the engine keeps the string and quotes it.
PLAIN_BUT_STRING_FOR_PYYAML = ["0o17", "08", "09.5x", "1e3", "NaN", "2001-12-14", "=", "<<"]


def test_plain_tenant_scalars_that_are_strings_stay_those_strings(policy):
    args = "".join("\n    - %s" % value for value in PLAIN_BUT_STRING_FOR_PYYAML)
    text = to_yaml(shop_pod()).replace("  - name: web\n", "  - name: web\n    args:%s\n" % args)
    result = pod_policy.render_pod(text, policy)
    rendered = pod_policy.dump_pod(result.pod)
    assert load_all_ways(rendered)["spec"]["containers"][0]["args"] == PLAIN_BUT_STRING_FOR_PYYAML
    for value in PLAIN_BUT_STRING_FOR_PYYAML:
        assert '  - "%s"\n' % value in rendered


# An unquoted scalar that YAML reads as a number or a boolean is refused where text is
# required, with a hint; the engine never turns it into a string itself.  The hint shows the
# value YAML read (1:30 is the number 90), so quote what you mean.
NOT_TEXT = [
    ("8080", 'got an integer (quote it: "8080")'),
    ("yes", 'got a boolean (quote it: "true")'),
    ("off", 'got a boolean (quote it: "false")'),
    ("017", 'got an integer (quote it: "15")'),
    ("1:30", 'got an integer (quote it: "90")'),
    ("1_000", 'got an integer (quote it: "1000")'),
    ("0x1F", 'got an integer (quote it: "31")'),
    ("1.5", 'got a number (quote it: "1.5")'),
    (".inf", 'got a number (quote it: "inf")'),
]


@pytest.mark.parametrize("written, problem", NOT_TEXT)
def test_unquoted_numbers_and_booleans_are_refused_where_text_is_required(policy, written, problem):
    text = to_yaml(shop_pod()).replace(
        "  - name: web\n", "  - name: web\n    env:\n    - name: V\n      value: %s\n" % written
    )
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.render_pod(text, policy)
    assert caught.value.errors == [C0 + ".env[0].value: must be a string, " + problem]
