"""bin/sshkeys: applying a tenant's SFTP key file on a real tree in tmp_path, with the
links, FIFOs, hard links and directories a hostile tenant can put there. The hosting user
is the user running the tests (its uid owns the tenant's files)."""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSHKEYS = Path(__file__).resolve().parents[3] / "bin" / "sshkeys"


def load():
    loader = importlib.machinery.SourceFileLoader("sshkeys", str(SSHKEYS))
    spec = importlib.util.spec_from_loader("sshkeys", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


sshkeys = load()


def new_key(comment):
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


@pytest.fixture(name="hosting")
def hosting_fixture(tmp_path, monkeypatch):
    """A hosting root (owned by the test's user: root in CI, so the root check is
    patched to accept it), its scripts/ssh_keys, logs and the config; returns a dict."""
    root = tmp_path / "srv" / "shop"
    (root / "scripts" / "ssh_keys").mkdir(parents=True)
    (root / "logs").mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    config = {
        "enabled": True,
        "hosting": "shop",
        "uid": os.getuid(),
        "gid": os.getgid(),
        "root": str(root),
        "source": "scripts/ssh_keys/authorized_keys",
        "trigger": "scripts/ssh_keys/ssh_keys.run",
        "log": "logs/ssh_keys.log",
        "dest": str(etc / "tenant_keys"),
    }
    ops = etc / "ops.json"
    ops.write_text(json.dumps({"ssh_keys": config}))
    real_fstat = os.fstat

    class Stat:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, name):
            return 0 if name == "st_uid" else getattr(self._st, name)

    def fstat(fd):
        st = real_fstat(fd)
        return Stat(st) if os.path.samefile(f"/proc/self/fd/{fd}", root) else st

    monkeypatch.setattr(sshkeys.os, "fstat", fstat)
    return {"root": root, "config": config, "ops": ops, "dest": etc / "tenant_keys"}


def apply(hosting):
    (hosting["root"] / hosting["config"]["trigger"]).touch()
    return sshkeys.main(["apply", str(hosting["ops"])])


def log(hosting):
    return (hosting["root"] / "logs" / "ssh_keys.log").read_text()


def test_valid_file_replaces_the_tenant_keys_and_logs(hosting):
    one, two = new_key("laptop"), new_key("phone")
    (hosting["root"] / hosting["config"]["source"]).write_text(f"# mine\n{one}\n\n{two}\n{one}\n")
    assert apply(hosting) == 0
    text = hosting["dest"].read_text()
    assert [line for line in text.splitlines() if not line.startswith("#")] == [one, two]
    assert oct(hosting["dest"].stat().st_mode & 0o777) == "0o640"
    assert "2 keys applied" in log(hosting)
    assert not (hosting["root"] / hosting["config"]["trigger"]).exists()


def test_one_bad_line_changes_nothing(hosting):
    good = new_key("laptop")
    (hosting["root"] / hosting["config"]["source"]).write_text(good + "\n")
    apply(hosting)
    before = hosting["dest"].read_text()
    (hosting["root"] / hosting["config"]["source"]).write_text(
        f'{new_key("new")}\ncommand="/bin/sh" {good}\n'
    )
    assert apply(hosting) == 0
    assert hosting["dest"].read_text() == before
    text = log(hosting)
    assert "the keys were NOT applied" in text
    assert "line 2: starts with options" in text


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "hardlink-of-other-owner"])
def test_a_key_file_that_is_not_the_tenants_regular_file_is_refused(hosting, tmp_path, kind):
    source = hosting["root"] / hosting["config"]["source"]
    secret = tmp_path / "secret"
    secret.write_text(new_key("not the tenant's") + "\n")
    if kind == "symlink":
        source.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(source)
    elif kind == "directory":
        source.mkdir()
    else:
        hosting["config"]["uid"] = os.getuid() + 1  # the file is not the hosting user's
        hosting["ops"].write_text(json.dumps({"ssh_keys": hosting["config"]}))
        os.link(secret, source)
    assert apply(hosting) == 0  # refused, and said so in the log (or nothing: no log owner)
    assert not hosting["dest"].exists()
    if kind != "hardlink-of-other-owner":
        assert "NOT applied" in log(hosting)
        assert "not the tenant" not in log(hosting)


def test_a_symlinked_directory_on_the_way_is_not_followed(hosting, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "authorized_keys").write_text(new_key("planted") + "\n")
    keys_dir = hosting["root"] / "scripts" / "ssh_keys"
    keys_dir.rmdir()
    keys_dir.symlink_to(elsewhere)
    (elsewhere / "ssh_keys.run").touch()
    assert sshkeys.main(["apply", str(hosting["ops"])]) == 0
    assert not hosting["dest"].exists()
    assert (elsewhere / "ssh_keys.run").exists()  # not removed through the link either
    assert "cannot be opened" in log(hosting)


def test_a_log_that_is_a_link_is_not_written(hosting, tmp_path):
    target = tmp_path / "target"
    target.write_text("")
    (hosting["root"] / "logs" / "ssh_keys.log").symlink_to(target)
    (hosting["root"] / hosting["config"]["source"]).write_text(new_key("x") + "\n")
    assert apply(hosting) == 0
    assert target.read_text() == ""
    assert hosting["dest"].exists()


def test_a_trigger_directory_is_moved_aside(hosting):
    trigger = hosting["root"] / hosting["config"]["trigger"]
    trigger.mkdir()
    (trigger / "x").touch()
    (hosting["root"] / hosting["config"]["source"]).write_text("")
    assert sshkeys.main(["apply", str(hosting["ops"])]) == 0
    assert not trigger.exists()
    assert "was a directory" in log(hosting)


def test_turned_off_and_usage(hosting):
    hosting["config"]["enabled"] = False
    hosting["ops"].write_text(json.dumps({"ssh_keys": hosting["config"]}))
    assert sshkeys.main(["apply", str(hosting["ops"])]) == 1
    assert sshkeys.main([]) == 2
    proc = subprocess.run(
        [sys.executable, str(SSHKEYS), "apply", "/nonexistent"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "sshkeys:" in proc.stderr
