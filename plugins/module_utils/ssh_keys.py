# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SFTP login keys of a hosting: one OpenSSH public key per line, checked before sshd sees it.

Pure Python (standard library only): the hosting model checks the inventory's keys with it
and bin/sshkeys, which applies the key file a tenant edits, checks theirs the same way.

A line is `TYPE BASE64 [COMMENT]`. Refused: anything before the type (sshd reads it as
options: `command=`, `permitopen=`, `from=`, ...), a type sshd would not accept for a login
(DSA), base64 that is not exact, a key whose encoded type differs from the written one, RSA
keys below 2048 bits, control characters. Each problem names the line and what is wrong,
never the key material.
"""

import base64
import binascii
import re
import struct

# Key types an OpenSSH 9.2 or later server accepts for a user login by default.
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)
MIN_RSA_BITS = 2048
MAX_LINE = 16384
# At most this many keys per file (a tenant's file and the inventory's list alike).
MAX_KEYS = 100
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KeyLineError(ValueError):
    """A key line sshd must not see; the message says what is wrong with it."""


def _string(blob, offset):
    if offset + 4 > len(blob):
        raise KeyLineError("the key data is truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise KeyLineError("the key data is truncated")
    return blob[offset + 4 : end], end


def parse_key(line):
    """(type, base64, comment) of one key line; raises KeyLineError naming the problem."""
    if not isinstance(line, str):
        raise KeyLineError("must be a line of text")
    if len(line) > MAX_LINE:
        raise KeyLineError(f"is longer than {MAX_LINE} characters")
    if _CONTROL.search(line.rstrip("\n")):
        raise KeyLineError("contains a control character")
    fields = line.split(None, 2)
    if not fields:
        raise KeyLineError("is empty")
    kind = fields[0]
    if kind not in KEY_TYPES:
        if kind == "ssh-dss":
            raise KeyLineError("DSA keys (ssh-dss) are not accepted by the server; use ssh-ed25519")
        if "=" in kind or any(word in KEY_TYPES for word in line.split()[1:]):
            raise KeyLineError(
                "starts with options (such as command=, from=, permitopen=), which are not"
                " allowed: a line is TYPE KEY [COMMENT]"
            )
        raise KeyLineError(f"unknown key type {kind[:40]!r}; accepted: {', '.join(KEY_TYPES)}")
    if len(fields) < 2:
        raise KeyLineError(f"has the type {kind} but no key after it")
    data = fields[1]
    if not _BASE64.fullmatch(data) or len(data) % 4:
        raise KeyLineError("the key is not valid base64")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLineError("the key is not valid base64") from None
    encoded, offset = _string(blob, 0)
    if encoded != kind.encode("ascii"):
        raise KeyLineError(f"the key data is a {encoded[:40]!r} key, not {kind}")
    if kind == "ssh-rsa":
        _exponent, offset = _string(blob, offset)
        modulus, offset = _string(blob, offset)
        bits = int.from_bytes(modulus, "big").bit_length()
        if bits < MIN_RSA_BITS:
            raise KeyLineError(f"the RSA key has {bits} bits, at least {MIN_RSA_BITS} are needed")
    elif kind == "ssh-ed25519":
        public, offset = _string(blob, offset)
        if len(public) != 32:
            raise KeyLineError("the ed25519 key is not 32 bytes long")
    comment = fields[2].strip() if len(fields) > 2 else ""
    return kind, data, comment


def key_line(key):
    """The canonical text of a parsed key (type, base64, comment)."""
    return " ".join(part for part in key if part)


def parse_lines(text):
    """(keys, errors) of a key file's text: blank lines and `#` comments are skipped;
    errors are `line N: problem` (1-based)."""
    keys, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            keys.append(parse_key(stripped))
        except KeyLineError as exc:
            errors.append(f"line {number}: {exc}")
    if len(keys) > MAX_KEYS:
        errors.append(f"{len(keys)} keys; at most {MAX_KEYS} are accepted")
    return keys, errors


def file_text(header_lines, keys):
    """An authorized_keys file: `#` header lines, then one canonical key per line."""
    lines = [f"# {line}" if line else "#" for line in header_lines]
    seen = set()
    for key in keys:
        if key[:2] in seen:
            continue
        seen.add(key[:2])
        lines.append(key_line(key))
    return "\n".join(lines) + "\n"
