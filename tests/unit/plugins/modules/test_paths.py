"""Tests for plugins/module_utils/paths.py on a temporary directory (run as any user:
owners are left unset where the test runner may not chown)."""

import os
import stat
import sys

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.paths import (
    PathsError,
    converge,
    diff_text,
    normalise,
)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_creates_tree_then_idempotent(tmp_path):
    root = str(tmp_path / "h")
    entries = [
        {"path": root, "mode": "0750"},
        {"path": root + "/www", "mode": "2750"},
        {"path": root + "/www/index.html", "content": "hi\n", "mode": "0640"},
        {"path": root + "/link", "state": "link", "src": "www"},
    ]
    result = converge(entries)
    assert result["changed"]
    assert set(result["actions"].values()) == {"created"}
    assert mode_of(root + "/www") == 0o2750
    assert open(root + "/www/index.html").read() == "hi\n"
    assert os.readlink(root + "/link") == "www"
    again = converge(entries)
    assert not again["changed"] and again["actions"] == {}


def test_check_mode_changes_nothing(tmp_path):
    root = str(tmp_path / "h")
    result = converge([{"path": root}, {"path": root + "/f", "content": "x"}], check_mode=True)
    assert result["actions"] == {root: "created", root + "/f": "created"}
    assert not os.path.exists(root)


@pytest.mark.parametrize(
    "state, planted, message",
    [
        ("directory", "symlink", "exists as link, expected a directory"),
        ("file", "symlink", "exists as link, expected a file"),
        ("file", "directory", "exists as directory, expected a file"),
        ("link", "directory", "exists as a directory, expected a link"),
    ],
)
def test_refuses_planted_objects(tmp_path, state, planted, message):
    target = tmp_path / "target"
    target.mkdir()
    path = tmp_path / "x"
    if planted == "symlink":
        path.symlink_to(target)
    else:
        path.mkdir()
    entry = {"path": str(path), "state": state, "content": "c", "src": "t", "mode": "0700"}
    with pytest.raises(PathsError, match=message):
        converge([entry])
    assert mode_of(target) != 0o700 or planted != "symlink"


def test_symlinked_parent_in_user_dir_is_refused(tmp_path):
    if os.geteuid() == 0:
        os.chown(tmp_path, 1234, 1234)  # a tenant-owned directory
    else:
        pytest.skip("needs a directory not owned by root: run as root")
    (tmp_path / "real").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "real")
    with pytest.raises(PathsError, match="is a symlink in a directory not owned by root"):
        converge([{"path": str(tmp_path / "run" / "f"), "content": "x"}])


def test_file_rewrite_and_mode_fix(tmp_path):
    path = str(tmp_path / "f")
    converge([{"path": path, "content": "a", "mode": "0600"}])
    result = converge([{"path": path, "content": "b", "mode": "0600"}])
    assert result["actions"] == {path: "updated"}
    assert open(path).read() == "b"
    os.chmod(path, 0o666)
    result = converge([{"path": path, "content": "b", "mode": "0600"}])
    assert result["actions"] == {path: "updated"} and mode_of(path) == 0o600


def test_create_only_never_touches_existing(tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text("tenant edit\n")
    os.chmod(path, 0o600)
    result = converge(
        [{"path": str(path), "content": "seed\n", "mode": "0640", "create_only": True}]
    )
    assert not result["changed"]
    assert path.read_text() == "tenant edit\n" and mode_of(path) == 0o600


def test_create_only_creates(tmp_path):
    path = tmp_path / "pod.yaml"
    result = converge([{"path": str(path), "content": "seed\n", "create_only": True}])
    assert result["actions"] == {str(path): "created"} and path.read_text() == "seed\n"


def test_keep_content_fixes_owner_and_mode_never_the_content(tmp_path):
    path = tmp_path / "shop-shop.log"
    entry = {"path": str(path), "content": "", "mode": "0660", "keep_content": True}
    result = converge([entry])
    assert result["actions"] == {str(path): "created"} and path.read_text() == ""
    path.write_text("container output\n")
    os.chmod(path, 0o644)
    result = converge([entry])
    assert result["actions"] == {str(path): "updated"}
    assert path.read_text() == "container output\n" and mode_of(path) == 0o660
    assert not converge([entry])["changed"]


def test_keep_content_refuses_a_link_and_a_hard_link(tmp_path):
    path = tmp_path / "shop-shop.log"
    other = tmp_path / "pod.yaml"
    other.write_text("tenant's\n")
    os.chmod(other, 0o600)
    os.link(other, path)
    entry = {"path": str(path), "content": "", "mode": "0660", "keep_content": True}
    with pytest.raises(PathsError, match="2 names"):
        converge([entry])
    path.unlink()
    path.symlink_to(other)
    with pytest.raises(PathsError, match="exists as link, expected a file"):
        converge([entry])
    assert mode_of(other) == 0o600
    assert other.read_text() == "tenant's\n"


def test_link_replaced_when_target_differs(tmp_path):
    path = tmp_path / "l"
    path.symlink_to("old")
    result = converge([{"path": str(path), "state": "link", "src": "new"}])
    assert result["actions"] == {str(path): "updated"} and os.readlink(path) == "new"


def test_prune_and_probe(tmp_path):
    keep = tmp_path / "shop-web.env"
    stale = tmp_path / "shop-old.env"
    other = tmp_path / "pod.yaml"
    for f in (keep, stale, other):
        f.write_text("x")
    result = converge(
        [{"path": str(keep), "content": "x"}],
        prune=[{"dir": str(tmp_path), "pattern": "*.env"}],
        probe=[str(other), str(tmp_path / "nothing")],
    )
    assert result["actions"] == {str(stale): "removed"}
    assert keep.exists() and other.exists() and not stale.exists()
    assert result["exists"] == {str(other): True, str(tmp_path / "nothing"): False}


def test_prune_only_what_the_owner_made(tmp_path):
    """With an owner, files of anybody else (a tenant's own env file) are left alone."""
    mine = tmp_path / "stale.env"
    mine.write_text("x")
    me = os.lstat(mine).st_uid
    result = converge([], prune=[{"dir": str(tmp_path), "pattern": "*.env", "owner": me + 1}])
    assert result["actions"] == {} and mine.exists()
    result = converge([], prune=[{"dir": str(tmp_path), "pattern": "*.env", "owner": me}])
    assert result["actions"] == {str(mine): "removed"}


def test_moved_renames_once_and_keeps_what_is_there(tmp_path):
    d = str(tmp_path)
    old, new = d + "/pod.yaml", d + "/pod-shop.yaml"
    open(old, "w").write("tenant edit\n")
    entries = [
        {"path": old, "state": "moved", "dest": new},
        {"path": new, "content": "seed\n", "create_only": True},
    ]
    check = converge(entries, check_mode=True)
    assert check["actions"][old] == "moved" and os.path.exists(old)
    result = converge(entries)
    assert result["actions"] == {old: "moved"}
    assert diff_text(result)[1] == f"{old}: moved to {new}\n"
    assert not os.path.lexists(old) and open(new).read() == "tenant edit\n"
    assert not converge(entries)["changed"]
    # both names present: the new one wins, the old one is left alone
    open(old, "w").write("older\n")
    assert not converge(entries)["changed"]
    assert open(old).read() == "older\n" and open(new).read() == "tenant edit\n"


def test_moved_moves_a_link_as_itself(tmp_path):
    d = str(tmp_path)
    secret = d + "/secret"
    open(secret, "w").write("root only\n")
    os.symlink(secret, d + "/pod.yaml")
    converge([{"path": d + "/pod.yaml", "state": "moved", "dest": d + "/pod-x.yaml"}])
    assert os.readlink(d + "/pod-x.yaml") == secret
    assert open(secret).read() == "root only\n"


def test_absent(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert converge([{"path": str(f), "state": "absent"}])["actions"] == {str(f): "removed"}
    assert converge([{"path": str(f), "state": "absent"}])["actions"] == {}


def test_diff_never_shows_content(tmp_path):
    path = str(tmp_path / "secret.env")
    result = converge([{"path": path, "content": "PASSWORD=hunter2\n", "mode": "0640"}])
    before, after = diff_text(result)
    assert "hunter2" not in before + after
    assert before == f"{path}: absent\n" and "sha1:" in after


# A validator that reads the new file: it must hold "ok", else it fails with a message.
CHECK_OK = [
    sys.executable,
    "-c",
    "import sys; d = open(sys.argv[1]).read(); sys.exit(0 if d == 'ok' else 'bad: ' + sys.argv[1])",
    "%s",
]


def test_validate_guards_a_replacement(tmp_path):
    path = str(tmp_path / "conf")
    assert converge([{"path": path, "content": "ok", "validate": CHECK_OK}])["changed"]
    with pytest.raises(PathsError, match=r"fails validation .*left as it was: bad: " + path):
        converge([{"path": path, "content": "broken", "validate": CHECK_OK}])
    assert open(path).read() == "ok"
    assert os.listdir(tmp_path) == ["conf"]  # no temporary file left behind


def test_validate_runs_only_on_a_change_and_never_in_check_mode(tmp_path):
    path = str(tmp_path / "conf")
    marker = tmp_path / "ran"
    count = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')", "%s"]
    converge([{"path": path, "content": "a", "validate": count}])
    converge([{"path": path, "content": "a", "validate": count}])
    converge([{"path": path, "content": "b", "validate": count}], check_mode=True)
    assert marker.read_text() == "x" and open(path).read() == "a"


def test_validate_of_a_new_file_that_fails_creates_nothing(tmp_path):
    path = str(tmp_path / "conf")
    with pytest.raises(PathsError, match="fails validation"):
        converge([{"path": path, "content": "no", "validate": CHECK_OK}])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"path": "relative"}], "must be an absolute path"),
        ([{"path": "/a"}, {"path": "/a/"}], "listed twice"),
        ([{"path": "/a", "state": "file"}], "needs content"),
        ([{"path": "/a", "state": "link"}], "needs src"),
        ([{"path": "/a", "mode": "rwx"}], "not an octal number"),
        ([{"path": "/a", "owner": "root"}], "numeric id"),
        ([{"path": "/a", "state": "fifo"}], "state must be one of"),
        ([{"path": "/a", "validate": ["true", "%s"]}], "validate is for files"),
        ([{"path": "/a", "content": "x", "validate": "true %s"}], "list of strings"),
        ([{"path": "/a", "content": "x", "validate": ["true"]}], "with %s"),
        ([{"path": "/a/b", "state": "moved"}], "moved needs dest"),
        ([{"path": "/a/b", "state": "moved", "dest": "/c/b"}], "same directory"),
    ],
)
def test_normalise_errors(entries, message):
    with pytest.raises(PathsError, match=message):
        normalise(entries)


# --- the module with groups (one call for many hostings) ---------------------------------


def test_module_groups_converge_each_and_report_a_bad_one_by_name(tmp_path):
    from podspec_helpers import run_module_file

    good = tmp_path / "good"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "www").symlink_to(tmp_path)  # planted where a directory belongs
    groups = [
        {
            "name": "good",
            "paths": [{"path": str(good), "mode": "0750"}, {"path": f"{good}/f", "content": "x"}],
            "probe": [f"{good}/f", f"{good}/missing"],
        },
        {"name": "bad", "paths": [{"path": f"{bad}/www", "mode": "0750"}]},
    ]
    dry = run_module_file("paths", tmp_path, groups=groups, _ansible_check_mode=True)
    assert dry["changed"] and not good.exists()
    assert dry["groups"]["good"]["actions"] == {str(good): "created", f"{good}/f": "created"}

    out = run_module_file("paths", tmp_path, groups=groups)
    assert not out.get("failed"), out
    assert out["groups"]["good"]["exists"] == {f"{good}/f": True, f"{good}/missing": False}
    assert (good / "f").read_text() == "x"
    assert out["groups"]["bad"]["failed"]
    assert "expected a directory" in out["groups"]["bad"]["msg"]
    assert (bad / "www").is_symlink()

    again = run_module_file("paths", tmp_path, groups=groups[:1])
    assert not again["changed"] and again["groups"]["good"]["actions"] == {}


def test_module_fails_when_every_group_failed_or_names_repeat(tmp_path):
    from podspec_helpers import run_module_file

    (tmp_path / "x").symlink_to(tmp_path)
    bad = {"name": "bad", "paths": [{"path": str(tmp_path / "x")}]}
    out = run_module_file("paths", tmp_path, groups=[bad])
    assert out["failed"] and out["msg"].startswith("every group failed: bad: ")
    twice = run_module_file("paths", tmp_path, groups=[{"name": "a"}, {"name": "a"}])
    assert twice["failed"] and "duplicate names: a" in twice["msg"]
    both = run_module_file("paths", tmp_path, groups=[], paths=[])
    assert both["failed"] and "mutually exclusive" in both["msg"]
