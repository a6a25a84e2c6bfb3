# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab CA (one per cache) and certificates signed by it."""

import os
import secrets
import tempfile

from . import config
from .mounts import remove_tree
from .util import flock, run, say, write_file


def ca_dir():
    return os.path.join(config.CACHE_DIR, "ca")


def _openssl_req_new_key(kind, key, out, more, what):
    """`openssl req KIND` with a new P-256 key (unencrypted) in key; its output in out.

    kind: -x509 (a self-signed certificate) or -new (a certificate request).
    """
    run(
        [
            "openssl",
            "req",
            kind,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            out,
            *more,
        ],
        capture=True,
        what=what,
    )


def ensure_ca():
    d = ca_dir()
    if os.path.isfile(os.path.join(d, "ca.pem")) and os.path.isfile(os.path.join(d, "ca.key")):
        return d
    os.makedirs(config.CACHE_DIR, exist_ok=True)
    with flock(os.path.join(config.CACHE_DIR, "ca.lock"), what="the lab CA"):
        if os.path.isfile(os.path.join(d, "ca.pem")):
            return d
        tmp = tempfile.mkdtemp(dir=config.CACHE_DIR, prefix=".ca-")
        os.chmod(tmp, 0o700)
        _openssl_req_new_key(
            "-x509",
            os.path.join(tmp, "ca.key"),
            os.path.join(tmp, "ca.pem"),
            [
                "-days",
                "3650",
                "-subj",
                "/O=webhosting.pods lab/CN=webhosting.pods lab CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            what="openssl (lab CA)",
        )
        os.chmod(os.path.join(tmp, "ca.pem"), 0o644)
        if os.path.lexists(d):
            remove_tree(d)
        os.rename(tmp, d)
        say(f"created the lab CA: {d}/ca.pem")
    return d


def issue_cert(directory, stem, names, ips):
    """Key + certificate (signed by the lab CA) in directory/STEM-key.pem, STEM-cert.pem."""
    ca = ensure_ca()
    key = os.path.join(directory, f"{stem}-key.pem")
    cert = os.path.join(directory, f"{stem}-cert.pem")
    csr = os.path.join(directory, f"{stem}.csr")
    ext = os.path.join(directory, f"{stem}.ext")
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    write_file(
        ext,
        "[v3]\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={san}\n",
    )
    _openssl_req_new_key(
        "-new", key, csr, ["-subj", f"/CN={names[0]}"], what=f"openssl (key for {stem})"
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            os.path.join(ca, "ca.pem"),
            "-CAkey",
            os.path.join(ca, "ca.key"),
            "-set_serial",
            str(int.from_bytes(secrets.token_bytes(16), "big")),
            "-days",
            "825",
            "-extfile",
            ext,
            "-extensions",
            "v3",
            "-out",
            cert,
        ],
        capture=True,
        what=f"openssl (certificate for {stem})",
    )
    os.unlink(csr)
    os.unlink(ext)
    os.chmod(key, 0o600)
    return cert, key
