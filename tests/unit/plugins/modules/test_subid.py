"""Table-driven and property tests for plugins/module_utils/subid.py."""

import json

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.subid import (
    Allocation,
    SubidError,
    first_free,
    overlaps,
    parse,
    plan,
    render_removed,
)
from ansible_collections.webhosting.pods.plugins.modules import subid as subid_module
from hypothesis import given, settings
from hypothesis import strategies as st
from module_args import patch_module_args

BASE = 1000000000
UID_MIN = 10000
C = 65536


def line(owner, start, count=C):
    return f"{owner}:{start}:{count}\n"


def read(path):
    with open(path) as handle:
        return handle.read()


def _plan(text, name="shop", uid=10001, **kw):
    kw.setdefault("base", BASE)
    kw.setdefault("uid_min", UID_MIN)
    return plan(text, name, uid, **kw)


@pytest.mark.parametrize(
    "text, uid, expected_start, expected_text",
    [
        # empty file: deterministic slot
        ("", 10001, BASE + C, line("shop", BASE + C)),
        ("", 10000, BASE, line("shop", BASE)),
        # unrelated useradd ranges far below base are left alone
        (
            "admin:100000:65536\n",
            10002,
            BASE + 2 * C,
            "admin:100000:65536\n" + line("shop", BASE + 2 * C),
        ),
        # missing trailing newline is repaired before appending
        (
            "admin:100000:65536",
            10000,
            BASE,
            "admin:100000:65536\n" + line("shop", BASE),
        ),
        # deterministic slot taken by someone else: first free aligned slot
        (
            line("other", BASE),
            10000,
            BASE + C,
            line("other", BASE) + line("shop", BASE + C),
        ),
        # a misaligned foreign range pushes to the next aligned slot
        (
            line("other", BASE + 5, 10),
            10000,
            BASE + C,
            line("other", BASE + 5, 10) + line("shop", BASE + C),
        ),
        # comments and blank lines survive
        ("# keep\n\n", 10000, BASE, "# keep\n\n" + line("shop", BASE)),
        # uid below uid_min: no deterministic slot, first free
        ("", 500, BASE, line("shop", BASE)),
    ],
)
def test_plan_new_range(text, uid, expected_start, expected_text):
    new_text, allocation = _plan(text, uid=uid)
    assert allocation == Allocation(expected_start, C, False)
    assert new_text == expected_text


@pytest.mark.parametrize(
    "text, start, count",
    [
        ("shop:100000:65536\n", 100000, 65536),  # useradd's own choice is kept
        (line("10001", BASE), BASE, 65536),  # keyed by uid
        (line("shop", BASE, 131072), BASE, 131072),  # larger than needed is fine
    ],
)
def test_existing_range_is_kept(text, start, count):
    new_text, allocation = _plan(text)
    assert allocation == Allocation(start, count, True)
    assert new_text == text


@pytest.mark.parametrize(
    "text, message",
    [
        ("shop:1:2\nshop:10:2\n", "has 2 ranges"),
        ("shop:100000:65536\nother:100100:10\n", "overlaps other"),
        ("shop:100000:1000\n", "1000 ids, 65536 are required"),
        ("garbage\n", "line 1: expected OWNER:START:COUNT"),
        ("shop:x:1\n", "decimal numbers"),
        ("bad name:1:1\n", "invalid owner"),
    ],
)
def test_errors(text, message):
    with pytest.raises(SubidError, match=message):
        _plan(text)


def test_full_space_raises():
    with pytest.raises(SubidError, match="no free range"):
        _plan(line("other", BASE, 2 * C), max_id=BASE + 2 * C - 1)


def test_stable_across_runs():
    text, first = _plan("")
    again, second = _plan(text)
    assert again == text
    assert second.start == first.start and second.kept


def test_render_removed():
    text = "a:1:1\n" + line("shop", BASE) + "10001:5:1\nb:2:1\n"
    assert render_removed(text, "shop", 10001) == "a:1:1\nb:2:1\n"
    assert render_removed("a:1:1\n", "shop", 10001) == "a:1:1\n"


def test_parse_keeps_lines():
    lines, entries = parse("# c\nx:1:2\n")
    assert lines == ["# c", "x:1:2"]
    assert entries[0].owner == "x" and entries[0].lineno == 2


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 10), (10, 5), False),
        ((0, 10), (9, 5), True),
        ((5, 1), (0, 10), True),
        ((0, 1), (1, 1), False),
    ],
)
def test_overlaps(a, b, expected):
    assert overlaps(a[0], a[1], b[0], b[1]) is expected


ranges = st.lists(
    st.tuples(
        st.integers(min_value=BASE - 10 * C, max_value=BASE + 40 * C),
        st.integers(min_value=1, max_value=3 * C),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(existing=ranges, uid=st.integers(min_value=0, max_value=10050))
def test_new_range_never_overlaps(existing, uid):
    text = "".join(line(f"u{i}", s, c) for i, (s, c) in enumerate(existing))
    new_text, allocation = _plan(text, uid=uid)
    assert not allocation.kept
    assert allocation.start >= BASE
    assert (allocation.start - BASE) % C == 0
    for start, count in existing:
        assert not overlaps(allocation.start, allocation.count, start, count)
    # idempotent: a second plan keeps it
    again, second = _plan(new_text, uid=uid)
    assert again == new_text and second.kept and second.start == allocation.start


def test_first_free_skips_chain():
    _lines, entries = parse(line("a", BASE) + line("b", BASE + C, 1))
    assert first_free(entries, C, BASE, 2**32 - 2) == BASE + 2 * C


# --- the module itself: check mode, diff, atomic write, idempotence --------------------


def _run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        subid_module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def files(tmp_path):
    subuid = tmp_path / "subuid"
    subgid = tmp_path / "subgid"
    subuid.write_text("admin:100000:65536\n")
    subgid.write_text("admin:100000:65536\n" + line("other", BASE + C))
    return {"subuid_path": str(subuid), "subgid_path": str(subgid)}


def test_module_check_mode_changes_nothing(capsys, files):
    before = {k: read(v) for k, v in files.items()}
    out = _run(
        capsys,
        name="shop",
        uid=10001,
        _ansible_check_mode=True,
        _ansible_diff=True,
        **files,
    )
    assert out["changed"] is True
    assert {k: read(v) for k, v in files.items()} == before
    assert out["subuid"] == {"start": BASE + C, "count": C}
    # the deterministic slot is taken in subgid: first free slot instead
    assert out["subgid"] == {"start": BASE, "count": C}
    assert [d["after_header"] for d in out["diff"]] == [
        files["subuid_path"],
        files["subgid_path"],
    ]


def test_module_writes_then_is_idempotent(capsys, files):
    out = _run(capsys, name="shop", uid=10001, **files)
    assert out["changed"] is True
    assert read(files["subuid_path"]).endswith(line("shop", BASE + C))
    again = _run(capsys, name="shop", uid=10001, **files)
    assert again["changed"] is False
    assert again["subuid"] == out["subuid"]
    gone = _run(capsys, name="shop", uid=10001, state="absent", **files)
    assert gone["changed"] is True
    assert "shop" not in read(files["subuid_path"])


def test_module_reports_bad_file(capsys, files):
    with open(files["subuid_path"], "w") as handle:
        handle.write("shop:1:2\nshop:3:4\n")
    out = _run(capsys, name="shop", uid=10001, **files)
    assert out["failed"] is True
    assert "has 2 ranges" in out["msg"]


def test_module_many_users_in_one_call_match_one_by_one(capsys, files, tmp_path):
    users = [{"name": "shop", "uid": 10001}, {"name": "blog", "uid": 10002}]
    out = _run(capsys, users=users, **files)
    assert out["changed"] is True and out["failed_users"] == {}
    # the same files built one user at a time
    one = {k: str(tmp_path / f"one-{k}") for k in files}
    for key in files:
        (tmp_path / f"one-{key}").write_text(
            "admin:100000:65536\n" + ("" if key == "subuid_path" else line("other", BASE + C))
        )
    for user in users:
        _run(capsys, **user, **one)
    assert [read(files[k]) for k in files] == [read(one[k]) for k in files]
    assert out["users"]["blog"]["subuid"] == {"start": BASE + 2 * C, "count": C}
    again = _run(capsys, users=users, **files)
    assert again["changed"] is False and again["users"] == out["users"]


def test_module_many_users_a_bad_one_is_left_out_of_both_files(capsys, files):
    # blog's gid entries are broken; its uid range must not be written either
    with open(files["subgid_path"], "a") as handle:
        handle.write("blog:1:2\nblog:3:4\n")
    users = [{"name": "shop", "uid": 10001}, {"name": "blog", "uid": 10002}]
    out = _run(capsys, users=users, **files)
    assert not out.get("failed"), out
    assert set(out["users"]) == {"shop"}
    assert "has 2 ranges" in out["failed_users"]["blog"]
    assert "blog" not in read(files["subuid_path"])
    assert "shop" in read(files["subuid_path"]) and "shop" in read(files["subgid_path"])
    alone = _run(capsys, users=[{"name": "blog", "uid": 10002}], **files)
    assert alone["failed"] is True and alone["msg"].startswith("no user could be allocated: blog:")


def test_module_many_users_every_one_failing_or_names_repeating(capsys, files):
    # shop is broken in the uid file, blog only in the gid file: the message lists the
    # uid file's failures first, as the files are read
    with open(files["subuid_path"], "a") as handle:
        handle.write("shop:1:2\nshop:3:4\n")
    with open(files["subgid_path"], "a") as handle:
        handle.write("blog:1:2\nblog:3:4\n")
    before = {k: read(v) for k, v in files.items()}
    users = [{"name": "blog", "uid": 10002}, {"name": "shop", "uid": 10001}]
    out = _run(capsys, users=users, **files)
    assert out["failed"] is True and out["users"] == {}
    assert list(out["failed_users"]) == ["shop", "blog"]
    assert out["msg"] == (
        f"no user could be allocated: shop: {out['failed_users']['shop']}; "
        f"blog: {out['failed_users']['blog']}"
    )
    assert out["failed_users"]["blog"].startswith(files["subgid_path"])
    assert {k: read(v) for k, v in files.items()} == before
    twice = _run(capsys, users=users + users[:1], **files)
    assert twice["failed"] is True and twice["msg"] == "users: duplicate names: blog"
