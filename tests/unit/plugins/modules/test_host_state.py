"""webhosting.pods.host_state: the ACL reader against ACLs the kernel accepted, the
certificate reader against real certificates, `systemctl show` parsing. The units part
runs against real managers in molecule (the roles decide from it what to converge)."""

import datetime
import os
import struct

import pytest
from ansible_collections.webhosting.pods.plugins.modules.host_state import (
    acl_user_entries,
    parse_getent,
    parse_show,
    perm_letters,
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
            {"path": str(directory), "user": "root"},
            {"path": str(plain), "user": "nobody"},
            {"path": str(tmp_path / "missing"), "user": "nobody"},
        ],
        exists=[str(directory), str(tmp_path / "missing")],
    )
    assert not out.get("failed"), out
    assert out["changed"] is False
    assert out["acls"] == {
        str(directory): {"nobody": "r-x", "root": None},
        f"{directory}:default": {"nobody": "--x"},
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
    out = run_module_file("host_state", tmp_path, certificates=paths)
    assert out["certificates"][str(pem)] == {
        "exists": True,
        "dns_names": ["shop.example", "www.shop.example"],
        "not_after": "2030-01-02T03:04:05+00:00",
    }
    assert out["certificates"][paths[1]] == {"exists": False, "dns_names": [], "not_after": None}
    assert out["certificates"][paths[2]]["exists"] is True
    assert out["certificates"][paths[2]]["error"]


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
