"""plugins/module_utils/fileio.py on a temporary directory: a failed write leaves the old
file and no temporary file, a symlink at the target is never written through, modes and
owners are those asked for (owners only when the tests run as root)."""

import errno
import os
import stat

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import fileio
from ansible_collections.webhosting.pods.plugins.module_utils.fileio import (
    group_id,
    octal_mode,
    open_nofollow,
    read_nofollow,
    user_id,
    write_atomic,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_writes_text_and_bytes_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "f"
    assert write_atomic(str(path), "grüß\n") is True
    assert path.read_bytes() == "grüß\n".encode("utf-8")
    assert write_atomic(str(path), b"\x00\x01") is True
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["f"]


class Boom(Exception):
    pass


def _fail(*_args, **_kwargs):
    raise OSError(errno.EIO, "simulated")


def _refuse(_temporary):
    raise Boom


@pytest.mark.parametrize("where", ["check", "os.fsync", "os.fchmod", "os.rename"])
def test_a_failed_write_keeps_the_old_file_and_no_temporary_file(tmp_path, monkeypatch, where):
    path = tmp_path / "f"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    check = None
    if where == "check":

        def check(tmp):
            assert open(tmp).read() == "new\n"  # the check sees the new content
            raise Boom

        expected = Boom
    else:
        monkeypatch.setattr(fileio.os, where.split(".")[1], _fail)
        expected = OSError
    with pytest.raises(expected):
        write_atomic(str(path), "new\n", mode=0o600, check=check)
    monkeypatch.undo()
    assert path.read_text() == "old\n" and mode_of(path) == 0o640
    assert os.listdir(tmp_path) == ["f"]


def test_a_failed_create_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        write_atomic(str(tmp_path / "new"), "x", check=_refuse)
    assert os.listdir(tmp_path) == []


def test_a_missing_directory_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(str(tmp_path / "no" / "f"), "x")


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    os.chmod(victim, 0o600)
    link = tmp_path / "link"
    link.symlink_to(victim)
    write_atomic(str(link), "new\n", mode=0o644)
    assert victim.read_text() == "secret\n" and mode_of(victim) == 0o600
    assert not link.is_symlink() and link.read_text() == "new\n" and mode_of(link) == 0o644


def test_keep_borrows_nothing_from_a_symlink(tmp_path, umask_022):
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.chmod(victim, 0o4711)
    link = tmp_path / "link"
    link.symlink_to(victim)
    write_atomic(str(link), "new\n", keep=True)
    assert mode_of(link) == 0o644  # the umask's, not the victim's
    assert mode_of(victim) == 0o4711


def test_exclusive_creates_once_and_never_replaces(tmp_path):
    path = tmp_path / "seed"
    assert write_atomic(str(path), "first", exclusive=True) is True
    assert write_atomic(str(path), "second", exclusive=True) is False
    assert path.read_text() == "first"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")  # not even a dangling symlink is written through
    assert write_atomic(str(link), "x", exclusive=True) is False
    assert not (tmp_path / "nowhere").exists()
    assert sorted(os.listdir(tmp_path)) == ["link", "seed"]


@pytest.mark.parametrize(
    "old_mode, mode, keep, expected",
    [
        (None, 0o640, False, 0o640),
        (None, 0o2750, False, 0o2750),
        (None, None, False, 0o644),  # 0o666 minus the umask
        (None, None, True, 0o644),  # nothing to keep
        (0o600, None, True, 0o600),  # the replaced file's
        (0o600, None, False, 0o644),
        (0o600, 0o640, True, 0o640),  # asked for beats kept
    ],
)
def test_modes(tmp_path, umask_022, old_mode, mode, keep, expected):
    path = tmp_path / "f"
    if old_mode is not None:
        path.write_text("old")
        os.chmod(path, old_mode)
    write_atomic(str(path), "new", mode=mode, keep=keep)
    assert mode_of(path) == expected


def test_the_mode_is_set_before_the_rename(tmp_path, monkeypatch):
    seen = []
    rename = os.rename

    def spy(src, dst):
        seen.append(mode_of(src))
        rename(src, dst)

    monkeypatch.setattr(fileio.os, "rename", spy)
    write_atomic(str(tmp_path / "f"), "x", mode=0o604)
    assert seen == [0o604]


@needs_root
def test_owner_and_group_asked_for_or_kept(tmp_path):
    path = tmp_path / "f"
    write_atomic(str(path), "a", owner=1234, group=4321, mode=0o2750)
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, mode_of(path)) == (1234, 4321, 0o2750)  # chown, then chmod
    write_atomic(str(path), "b", keep=True)
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid, mode_of(path)) == (1234, 4321, 0o2750)
    write_atomic(str(path), "c", group=99, keep=True)
    assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (1234, 99)
    write_atomic(str(path), "d")
    assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (0, 0)


def test_read_nofollow_refuses_a_symlink(tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert read_nofollow(str(tmp_path / "f")) == b"data"
    with pytest.raises(OSError) as raised:
        read_nofollow(str(tmp_path / "l"))
    assert raised.value.errno == errno.ELOOP
    (tmp_path / "d").mkdir()
    (tmp_path / "dl").symlink_to(tmp_path / "d")
    with open_nofollow(str(tmp_path / "d"), directory=True) as fd:
        assert stat.S_ISDIR(os.fstat(fd).st_mode)
    with pytest.raises(OSError):
        with open_nofollow(str(tmp_path / "dl"), directory=True):
            pass


@pytest.mark.parametrize(
    "value, expected",
    [(None, None), ("0640", 0o640), ("2750", 0o2750), (0o600, 0o600), ("u=rw,g=r", None)],
)
def test_octal_mode(value, expected):
    assert octal_mode(value) == expected


def test_ids_by_number_or_name():
    assert (user_id(None), group_id(None)) == (-1, -1)
    assert (user_id("10001"), group_id("10002")) == (10001, 10002)
    assert (user_id("root"), group_id("root")) == (0, 0)
    assert (user_id("no-such-user"), group_id("no-such-group")) == (-1, -1)
