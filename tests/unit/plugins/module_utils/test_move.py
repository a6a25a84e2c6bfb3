"""Moving a hosting (plugins/module_utils/move.py) with the real GNU tar in a temporary
directory: packed, taken away, unpacked at the same place, the manifest the same; owners
of subordinate ids moved to another range; links recorded, never followed. The whole move
between two lab hosts runs in molecule (scenario move)."""

import os
import shutil

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import move

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners and ACLs need root")

UID, GID, COUNT = 64001, 64001, 65536
OLD, NEW = 1_100_000_000, 1_200_000_000


def tree(root):
    (root / "data" / "db").mkdir(parents=True)
    (root / "www").mkdir()
    (root / "data" / "db" / "table").write_bytes(os.urandom(70000))
    (root / "www" / "index.html").write_text("<h1>hi</h1>\n")
    (root / "www" / "link").symlink_to("/etc/shadow")
    os.mkfifo(root / "data" / "fifo")
    sparse = root / "data" / "sparse"
    with open(sparse, "wb") as handle:
        handle.seek(50 << 20)
        handle.write(b"end")
    os.chown(root / "www" / "index.html", UID, GID)
    os.chown(root / "data" / "db", OLD + 999, OLD + 999)
    os.chown(root / "data" / "db" / "table", OLD + 999, OLD + 999)
    os.chmod(root / "data" / "db", 0o700)
    os.chmod(root / "data" / "db" / "table", 0o600)


def test_pack_unpack_gives_the_same_manifest(tmp_path):
    root = tmp_path / "srv" / "shop"
    tree(root)
    before, size = move.manifest(str(root), UID, GID, OLD, OLD, COUNT)
    assert before["www/link"] == ["link", 0, "0", "0", 0, "/etc/shadow"]
    assert before["data/db/table"][2:4] == ["sub+999", "sub+999"]
    assert before["www/index.html"][2] == "user"
    assert size == 70000 + len("<h1>hi</h1>\n") + (50 << 20) + 3
    archive = str(tmp_path / "shop.tar.gz")
    assert move.pack(archive, [str(root), str(tmp_path / "missing")]) == [str(root)]
    assert oct(os.stat(archive).st_mode & 0o777) == "0o600"
    assert os.path.getsize(archive) < 1 << 20  # the hole is not stored
    shutil.move(str(root), str(tmp_path / "old"))
    move.unpack(archive, [str(root)])
    after, _ = move.manifest(str(root), UID, GID, OLD, OLD, COUNT)
    assert move.digest(after) == move.digest(before)
    with pytest.raises(move.MoveError, match="already on this host"):
        move.unpack(archive, [str(root)])


def test_owners_move_to_the_new_range_and_the_manifest_stays(tmp_path):
    root = tmp_path / "shop"
    tree(root)
    before, _ = move.manifest(str(root), UID, GID, OLD, OLD, COUNT)
    assert move.shift_owners(str(root), (OLD, NEW), (OLD, NEW), COUNT) == 2
    assert os.lstat(root / "data" / "db" / "table").st_uid == NEW + 999
    assert oct(os.lstat(root / "data" / "db").st_mode & 0o7777) == "0o700"
    assert os.lstat(root / "www" / "index.html").st_uid == UID  # not a subordinate id
    after, _ = move.manifest(str(root), UID, GID, NEW, NEW, COUNT)
    assert move.digest(after) == move.digest(before)
    # a changed byte changes the digest
    (root / "www" / "index.html").write_text("<h1>hI</h1>\n")
    changed, _ = move.manifest(str(root), UID, GID, NEW, NEW, COUNT)
    assert move.digest(changed) != move.digest(before)


def test_certbot_account_of_a_lineage(tmp_path):
    account = tmp_path / "accounts" / "ca.test:14000" / "dir" / "abc123"
    account.mkdir(parents=True)
    conf = tmp_path / "renewal" / "shop.conf"
    conf.parent.mkdir()
    conf.write_text("version = 2.1.0\n[renewalparams]\naccount = abc123\nserver = x\n")
    assert move.certbot_account(str(tmp_path), str(conf)) == str(account)
    assert move.certbot_account(str(tmp_path), str(tmp_path / "none.conf")) is None
