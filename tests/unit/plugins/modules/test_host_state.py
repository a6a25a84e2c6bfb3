"""webhosting.pods.host_state: its logic (plugins/module_utils/host_state.py) called
directly - the ACL reader against ACLs the kernel accepted, the certificate reader against
real certificates, `systemctl show` and getent parsing, the units read through a stand-in
for systemctl - and the module run for real. The units part runs against real managers in
molecule (the roles decide from it what to converge)."""

import datetime
import os
import pwd
import shutil
import struct
import tempfile

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import host_state
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import (
    SHOW,
    HostStateError,
    acl_user_entries,
    exists,
    parse_getent,
    parse_show,
    perm_letters,
    read_acls,
    read_certificates,
    read_getent,
    read_units,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from podspec_helpers import run_module_file

UNDEFINED = 0xFFFFFFFF


def acl_blob(*named_users):
    """A version 2 access ACL with owner rw, the named users, group r, mask rx, other r."""
    entries = [(0x01, 6, UNDEFINED)]
    entries += [(0x02, perm, uid) for uid, perm in named_users]
    entries += [(0x04, 4, UNDEFINED), (0x10, 5, UNDEFINED), (0x20, 4, UNDEFINED)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def set_acl(path, blob, default=False):
    name = "system.posix_acl_default" if default else "system.posix_acl_access"
    try:
        os.setxattr(path, name, blob)  # the kernel checks the ACL before storing it
    except OSError as exc:
        pytest.fail(f"this filesystem refuses POSIX ACLs ({exc}); run the tests on ext4/tmpfs")


def test_acl_entries_and_letters():
    assert acl_user_entries(acl_blob((33, 1), (1000, 5))) == {33: 1, 1000: 5}
    assert [perm_letters(b) for b in (0, 1, 5, 7)] == ["---", "--x", "r-x", "rwx"]
    with pytest.raises(ValueError):
        acl_user_entries(struct.pack("<I", 1))


def test_module_reads_acls_set_through_the_kernel(tmp_path):
    directory = tmp_path / "www"
    directory.mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    nobody = 65534  # 'nobody' in every Debian passwd
    set_acl(str(directory), acl_blob((nobody, 5)))
    set_acl(str(directory), acl_blob((nobody, 1)), default=True)
    out = run_module_file(
        "host_state",
        tmp_path,
        acls=[
            {"path": str(directory), "user": "nobody"},
            {"path": str(directory), "user": "nobody", "default": True},
            # a uid in digits: a user that does not exist yet has no entry either
            {"path": str(directory), "user": str(nobody), "default": True},
            {"path": str(directory), "user": "4242424"},
            {"path": str(directory), "user": "root"},
            {"path": str(plain), "user": "nobody"},
            {"path": str(tmp_path / "missing"), "user": "nobody"},
        ],
        exists=[str(directory), str(tmp_path / "missing")],
    )
    assert not out.get("failed"), out
    assert out["changed"] is False
    assert out["acls"] == {
        str(directory): {"nobody": "r-x", "4242424": None, "root": None},
        f"{directory}:default": {"nobody": "--x", str(nobody): "--x"},
        str(plain): {"nobody": None},
        str(tmp_path / "missing"): {"nobody": None},
    }
    assert out["exists"] == {str(directory): True, str(tmp_path / "missing"): False}
    bad = run_module_file("host_state", tmp_path, acls=[{"path": str(plain), "user": "no-such"}])
    assert bad["failed"] and "no such user 'no-such'" in bad["msg"]


def test_module_reads_certificates(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example")])
    after = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("www.shop.example"), x509.DNSName("shop.example")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(Encoding.PEM))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    paths = [str(pem), str(tmp_path / "missing.pem"), str(garbage)]
    certificates = read_certificates(paths)
    assert certificates[str(pem)] == {
        "exists": True,
        "dns_names": ["shop.example", "www.shop.example"],
        "not_after": "2030-01-02T03:04:05+00:00",
    }
    assert certificates[paths[1]] == {"exists": False, "dns_names": [], "not_after": None}
    assert certificates[paths[2]]["exists"] is True
    assert certificates[paths[2]]["error"]
    out = run_module_file("host_state", tmp_path, certificates=paths)
    assert out["certificates"] == certificates


def test_parse_show_blocks():
    text = (
        "Id=user@1001.service\nLoadState=loaded\nActiveState=active\nUnitFileState=static\n\n"
        "Id=webhosting-trigger@shop.path\nLoadState=loaded\nActiveState=inactive\n"
        "UnitFileState=disabled\n"
    )
    assert parse_show(text) == {
        "user@1001.service": {
            "Id": "user@1001.service",
            "LoadState": "loaded",
            "ActiveState": "active",
            "UnitFileState": "static",
        },
        "webhosting-trigger@shop.path": {
            "Id": "webhosting-trigger@shop.path",
            "LoadState": "loaded",
            "ActiveState": "inactive",
            "UnitFileState": "disabled",
        },
    }


def test_module_reads_getent_databases_like_the_getent_module(tmp_path):
    # Against this machine's real name service: root and nobody are in every Debian.
    out = run_module_file(
        "host_state",
        tmp_path,
        getent=[
            {"database": "passwd"},
            {"database": "group", "keys": ["root", "no-such-group"]},
        ],
    )
    assert not out.get("failed"), out
    facts = out["ansible_facts"]
    assert facts["getent_passwd"]["root"][:2] == ["x", "0"]
    assert facts["getent_passwd"]["nobody"][1] == "65534"
    assert facts["getent_group"] == {"root": ["x", "0", ""]}
    bad = run_module_file("host_state", tmp_path, getent=[{"database": "no-such-database"}])
    assert bad["failed"] and "getent no-such-database" in bad["msg"]


@pytest.mark.parametrize(
    "text, entries",
    [
        ("", {}),
        ("a:x:1\n\nb::2:\n", {"a": ["x", "1"], "b": ["", "2", ""]}),
        ("a:x:1\na:y:2\n", {"a": ["x", "1"]}),  # the first entry of a name wins
    ],
)
def test_parse_getent(text, entries):
    assert parse_getent(text) == entries


def fake_show(replies):
    """A stand-in for host_state.show: the reply (text or a problem) per command line."""
    calls = []

    def show(argv):
        calls.append(argv)
        reply = replies[" ".join(argv)]
        return (parse_show(reply), None) if reply.startswith("Id=") else ({}, reply)

    return show, calls


def unit(name, active, load="loaded", file="static"):
    return f"Id={name}\nLoadState={load}\nActiveState={active}\nUnitFileState={file}\n\n"


def test_read_units_asks_running_managers_only():
    users = [
        {"name": "shop", "uid": 10001, "units": ["webhosting-pod.service", "x.timer"]},
        {"name": "blog", "uid": 10002, "units": ["webhosting-pod.service"]},
        {"name": "wiki", "uid": 10003, "units": ["webhosting-pod.service"]},
        {"name": "idle", "uid": 10004, "units": []},
    ]
    system_argv = (
        ["/bin/systemctl"]
        + SHOW
        + [
            "trigger@shop.path",
            "user@10001.service",
            "user@10002.service",
            "user@10003.service",
            "user@10004.service",
        ]
    )
    user_argv = ["/bin/systemctl", "--user"]
    show, calls = fake_show(
        {
            " ".join(system_argv): unit("trigger@shop.path", "active", file="enabled")
            + unit("user@10001.service", "active")
            + unit("user@10002.service", "inactive")
            + unit("user@10003.service", "active")
            + unit("user@10004.service", "active"),
            " ".join(user_argv + ["--machine=shop@"] + SHOW + users[0]["units"]): unit(
                "webhosting-pod.service", "failed"
            ),
            " ".join(user_argv + ["--machine=wiki@"] + SHOW + users[2]["units"]): "no bus",
        }
    )
    system, states = read_units("/bin/systemctl", ["trigger@shop.path"], users, show=show)
    assert system["trigger@shop.path"] == {"load": "loaded", "active": "active", "file": "enabled"}
    assert system["user@10002.service"]["active"] == "inactive"
    assert states == {
        "shop": {"manager": "active", "units": {"webhosting-pod.service": "failed", "x.timer": ""}},
        "blog": {"manager": "inactive", "units": {"webhosting-pod.service": ""}},
        "wiki": {"manager": "active", "units": {"webhosting-pod.service": ""}, "error": "no bus"},
        "idle": {"manager": "active", "units": {}},
    }
    assert len(calls) == 3  # the system manager, shop's and wiki's


def test_read_units_fails_when_the_system_manager_cannot_be_asked():
    show, _calls = fake_show({" ".join(["systemctl"] + SHOW + ["a.path"]): "Access denied"})
    with pytest.raises(HostStateError, match="^systemctl show: Access denied$"):
        read_units("systemctl", ["a.path"], [], show=show)
    show, calls = fake_show({})
    assert read_units(None, [], [], show=show) == ({}, {}) and calls == []


def test_read_getent_through_a_stand_in():
    replies = {
        ("getent", "passwd", "--"): (0, "root:x:0:0::/root:/bin/sh\n", ""),
        ("getent", "group", "--", "root", "nope"): (2, "root:x:0:\n", ""),
        ("getent", "shadow", "--"): (2, "", ""),
        ("getent", "bogus", "--"): (1, "", "Unknown database: bogus\n"),
    }

    def run_command(argv):
        return replies[tuple(argv)]

    facts = read_getent(
        "getent",
        [{"database": "passwd", "keys": []}, {"database": "group", "keys": ["root", "nope"]}],
        run_command,
    )
    assert facts == {
        "getent_passwd": {"root": ["x", "0", "0", "", "/root", "/bin/sh"]},
        "getent_group": {"root": ["x", "0", ""]},
    }
    with pytest.raises(HostStateError, match="^getent shadow: 2$"):
        read_getent("getent", [{"database": "shadow", "keys": []}], run_command)
    with pytest.raises(HostStateError, match="^getent bogus: Unknown database: bogus$"):
        read_getent("getent", [{"database": "bogus", "keys": []}], run_command)


def test_read_acls_errors(tmp_path, monkeypatch):
    with pytest.raises(HostStateError, match="^acls: no such user 'no-such'$"):
        read_acls([{"path": str(tmp_path), "user": "no-such", "default": False}])
    monkeypatch.setattr(host_state.os, "getxattr", lambda *a, **k: b"junk")
    with pytest.raises(HostStateError, match="cannot read its ACL: not a version 2 POSIX ACL"):
        read_acls([{"path": str(tmp_path), "user": "root", "default": False}])


def test_exists_does_not_follow_a_symlink(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    paths = [str(tmp_path / "dangling"), str(tmp_path / "nowhere")]
    assert exists(paths) == {paths[0]: True, paths[1]: False}


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_a_user_manager_is_asked_as_its_user_on_its_own_bus():
    """Real setpriv, a stand-in systemctl that reports who runs it and with what."""
    account = pwd.getpwnam("nobody")
    directory = tempfile.mkdtemp()
    try:
        os.chmod(directory, 0o755)
        systemctl = os.path.join(directory, "systemctl")
        with open(systemctl, "w", encoding="utf-8") as handle:
            handle.write(
                "#!/bin/sh\n"
                'printf "Id=probe\\nUid=%s\\nGid=%s\\nGroups=%s\\n'
                'Runtime=%s\\nHome=%s\\nArgs=%s\\n"'
                ' "$(id -u)" "$(id -g)" "$(id -G)" "$XDG_RUNTIME_DIR" "${HOME-unset}" "$*"\n'
            )
        os.chmod(systemctl, 0o755)
        users = [
            {"name": "nobody", "uid": account.pw_uid, "units": ["webhosting-pod.service"]},
            {"name": "gone", "uid": 4000000000, "units": ["webhosting-pod.service"]},
        ]
        (probe, problem), (nothing, gone) = host_state.show_users(
            systemctl, users, setpriv=shutil.which("setpriv")
        )
    finally:
        shutil.rmtree(directory)
    assert problem is None
    assert probe["probe"] == {
        "Id": "probe",
        "Uid": str(account.pw_uid),
        "Gid": str(account.pw_gid),
        "Groups": str(account.pw_gid),  # no supplementary group of root's
        "Runtime": f"/run/user/{account.pw_uid}",
        "Home": "unset",  # nothing of root's environment
        "Args": "--user " + " ".join(SHOW + ["webhosting-pod.service"]),
    }
    assert (nothing, gone) == ({}, "no account with uid 4000000000")


def test_orphans_are_the_entries_no_inventory_name_accounts_for(tmp_path):
    from ansible_collections.webhosting.pods.plugins.module_utils import host_state as hs

    roots, config = tmp_path / "srv", tmp_path / "etc" / "hostings"
    for directory in (roots / "shop", roots / "blog", config / "blog", config / "old"):
        directory.mkdir(parents=True)
    (roots / ".archive-tmp").mkdir()
    (config / "link").symlink_to("/etc")
    found = hs.orphans(["shop"], [str(roots), str(config), str(tmp_path / "missing")])
    assert found == {
        "blog": [str(roots / "blog"), str(config / "blog")],
        "link": [str(config / "link")],
        "old": [str(config / "old")],
    }
    assert hs.orphans(["shop", "blog", "old", "link"], [str(roots), str(config)]) == {}
    message = hs.orphan_warning("blog", found["blog"])
    assert message.startswith("hosting blog is on this host (") and "state: absent" in message
