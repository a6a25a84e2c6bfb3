"""The SFTP key checks (plugins/module_utils/ssh_keys.py) on real and crafted keys."""

import base64
import struct

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import ssh_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def openssh(key):
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def blob(*parts):
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


ED25519 = openssh(ed25519.Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    "line",
    [
        ED25519,
        ED25519 + " me@laptop",
        ED25519 + " two words",
        openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        openssh(ec.generate_private_key(ec.SECP256R1())),
        openssh(ec.generate_private_key(ec.SECP521R1())),
    ],
)
def test_real_keys_pass(line):
    kind, data, _comment = ssh_keys.parse_key(line)
    assert line.startswith(f"{kind} {data}")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('command="/bin/sh" ' + ED25519, "options"),
        ('no-pty,permitopen="x:1" ' + ED25519, "options"),
        ('from="10.0.0.1" ' + ED25519, "options"),
        ("restrict " + ED25519, "options"),
        ("ssh-dss " + blob(b"ssh-dss", b"x"), "DSA"),
        ("ssh-foo AAAA", "unknown key type"),
        ("ssh-ed25519", "no key"),
        ("ssh-ed25519 AAAA!!!!", "base64"),
        ("ssh-ed25519 " + ED25519.split()[1][:-3], "base64"),
        ("ssh-rsa " + ED25519.split()[1], "is a b'ssh-ed25519' key, not ssh-rsa"),
        ("ssh-ed25519 " + blob(b"ssh-ed25519", b"short"), "32 bytes"),
        ("ssh-ed25519 " + blob(b"ssh-ed25519")[:-4], "truncated"),
        ("ssh-rsa " + blob(b"ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 128), "1024 bits"),
        (ED25519 + " evil\x1b[2Jcomment", "control character"),
        (ED25519 + "\rssh-ed25519 x", "control character"),
        ("ssh-ed25519 " + "A" * 20000, "longer than"),
    ],
)
def test_bad_lines_name_the_problem(line, problem):
    with pytest.raises(ssh_keys.KeyLineError) as caught:
        ssh_keys.parse_key(line)
    assert problem in str(caught.value)
    # never the key material
    assert ED25519.split()[1] not in str(caught.value)


def test_file_lines_are_numbered_comments_and_blanks_skipped():
    text = f'# my keys\n\n{ED25519} laptop\ncommand="x" {ED25519}\n  \nssh-foo AAAA\n'
    keys, errors = ssh_keys.parse_lines(text)
    assert [k[2] for k in keys] == ["laptop"]
    assert errors[0].startswith("line 4: starts with options")
    assert errors[1].startswith("line 6: unknown key type")


def test_too_many_keys():
    keys, errors = ssh_keys.parse_lines("\n".join([ED25519] * (ssh_keys.MAX_KEYS + 1)))
    assert errors == [f"{ssh_keys.MAX_KEYS + 1} keys; at most {ssh_keys.MAX_KEYS} are accepted"]


def test_file_text_is_canonical_and_without_duplicates():
    key = ssh_keys.parse_key(ED25519 + "   spaced   comment ")
    text = ssh_keys.file_text(["header", ""], [key, key])
    assert text == f"# header\n#\n{ED25519} spaced   comment\n"
