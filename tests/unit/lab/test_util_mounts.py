"""labkit.util and labkit.mounts: running commands, files, locks, mountinfo."""

import os
import stat
import subprocess
import sys

import pytest
from labkit import mounts, util
from labkit.util import LabError


def test_run_returns_the_status_or_raises():
    assert util.run(["true"]) == 0
    assert util.run(["false"], check=False) == 1
    with pytest.raises(LabError, match=r"^false: exit status 1$"):
        util.run(["false"])
    with pytest.raises(LabError, match=r"^the thing: exit status 3$"):
        util.run(["sh", "-c", "exit 3"], what="the thing")


def test_run_capture():
    assert util.run(["printf", "a\\nb"], capture=True) == "a\nb"
    rc, out, err = util.run(
        ["sh", "-c", "echo out; echo err >&2; exit 4"], check=False, capture=True
    )
    assert (rc, out, err) == (4, "out\n", "err\n")
    with pytest.raises(LabError, match=r"sh -c echo oops >&2; exit 2: exit status 2\noops"):
        util.run(["sh", "-c", "echo oops >&2; exit 2"], capture=True)


def test_run_input_and_clean_environment(monkeypatch):
    monkeypatch.setenv("LEAK", "secret")
    assert util.run(["cat"], input="to stdin", capture=True) == "to stdin"
    env = util.run(["env"], capture=True).splitlines()
    assert sorted(env) == sorted(
        [f"PATH={util.INNER_PATH}", "LANG=C.UTF-8", "HOME=/root"]
    )  # nothing of labctl's own environment leaks into commands
    env = util.run(["env"], env=util.clean_env({"X": "1"}), capture=True).splitlines()
    assert "X=1" in env


def test_run_stdin_is_closed_without_input():
    assert util.run(["cat"], capture=True, timeout=10) == ""


def test_run_log_appends_and_tails_on_failure(tmp_path):
    log = tmp_path / "build.log"
    util.run(["echo", "first"], log=str(log))
    with pytest.raises(LabError) as exc:
        util.run(["sh", "-c", "echo second; exit 1"], log=str(log), what="step two")
    assert log.read_text() == "\n+ echo first\nfirst\n\n+ sh -c echo second; exit 1\nsecond\n"
    assert str(exc.value).startswith(f"step two: exit status 1\nsee {log}:\n")
    assert str(exc.value).endswith("second")


def test_run_missing_command_and_timeout():
    with pytest.raises(LabError, match=r"no-such-cmd-x: command not found \(run `labctl deps`\)"):
        util.run(["no-such-cmd-x"])
    with pytest.raises(LabError, match=r"^napping: timed out after 0.2 s$"):
        util.run(["sleep", "5"], timeout=0.2, what="napping")


def test_run_wants_an_argv_list():
    with pytest.raises(AssertionError):
        util.run("echo hi")


def test_say_and_warn(capsys):
    util.say("hello")
    util.warn("careful")
    out, err = capsys.readouterr()
    assert out == "labctl: hello\n"
    assert err == "labctl: warning: careful\n"


def test_tail(tmp_path):
    f = tmp_path / "log"
    f.write_text("".join(f"line {i}\n" for i in range(100)))
    assert util.tail(str(f), 3) == "line 97\nline 98\nline 99"
    assert util.tail(str(tmp_path / "missing")) == ""


def test_write_file_is_atomic_with_mode(tmp_path):
    path = tmp_path / "sub" / "secret"
    util.write_file(str(path), "one", 0o600)
    assert path.read_text() == "one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    util.write_file(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["secret"]  # no temporary file left


def test_write_file_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    with pytest.raises(TypeError):
        util.write_file(str(path), 42)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f"]


def test_replace_file_does_not_write_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep me")
    link = tmp_path / "rootfs-etc-hostname"
    link.symlink_to(outside)
    util.replace_file(str(link), "demo\n")
    assert not link.is_symlink()
    assert link.read_text() == "demo\n"
    assert outside.read_text() == "keep me"
    util.replace_file(str(tmp_path / "new"), "x")
    assert (tmp_path / "new").read_text() == "x"


def test_read_text(tmp_path):
    (tmp_path / "f").write_text("x")
    assert util.read_text(str(tmp_path / "f")) == "x"
    assert util.read_text(str(tmp_path / "missing")) is None
    assert util.read_text(str(tmp_path / "missing"), "") == ""


def test_fmt_s():
    assert util.fmt_s(1.25) == "1.2 s"
    assert util.fmt_s(106) == "106.0 s"


def test_flock_excludes_another_process(tmp_path, capsys):
    lock = tmp_path / "locks" / "demo.lock"
    holder = (
        "import fcntl, os, sys, time;"
        f"fd = os.open({str(lock)!r}, os.O_RDWR);"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    )
    with util.flock(str(lock), what="lab host demo"):
        proc = subprocess.run([sys.executable, "-c", holder], capture_output=True, text=True)
        assert proc.returncode != 0
        assert "BlockingIOError" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", holder], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with util.flock(str(lock), shared=True), util.flock(str(lock), shared=True):
        pass  # shared holders do not wait for each other
    assert capsys.readouterr().out == ""


MOUNTINFO = r"""22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
90 22 0:60 / /run/systemd/nspawn rw,relatime shared:50 - tmpfs webhosting-pods-lab rw,size=16384k
91 22 0:61 / /var/lib/lab/hosts/my\040host/rootfs/proc rw - proc proc rw
92 22 0:62 / /mnt/a\134b rw - tmpfs my\011tab rw
"""


def test_mountinfo_parses_and_unescapes(tmp_path):
    f = tmp_path / "mountinfo"
    f.write_text(MOUNTINFO)
    assert mounts.mountinfo(str(f)) == [
        ("/", "ext4", "/dev/vda"),
        ("/proc", "proc", "proc"),
        ("/run/systemd/nspawn", "tmpfs", "webhosting-pods-lab"),
        ("/var/lib/lab/hosts/my host/rootfs/proc", "proc", "proc"),
        ("/mnt/a\\b", "tmpfs", "my\ttab"),
    ]


def test_mountinfo_of_this_process():
    assert "/" in [mnt for mnt, _, _ in mounts.mountinfo()]


def test_mounts_under_a_fresh_directory(tmp_path):
    assert mounts.mounts_under(str(tmp_path)) == []


def test_remove_tree_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    tree = tmp_path / "hosts" / "demo"
    (tree / "rootfs" / "etc").mkdir(parents=True)
    (tree / "rootfs" / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (tree / "rootfs" / "link").symlink_to(outside)
    mounts.remove_tree(str(tree))
    assert not tree.exists()
    assert (outside / "precious").read_text() == "x"
    mounts.remove_tree(str(tree))  # already gone: nothing to do
