# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates of many new hostings in one module call: the self-signed stand-in nginx
serves until the ACME certificate is there, and the ACME certificates through certbot.

For one hosting the ingress role uses community.crypto (openssl_privatekey,
openssl_csr_pipe, x509_certificate: four calls per hosting, 0.5-1 s each) and a certbot
task; here the same results come from one call for all the new hostings of a run. The
certificates are made with python3-cryptography, which those modules use too; certbot is
run once per hosting, one after another (it locks its configuration directory).

No Ansible import: the module ``webhosting.pods.certificates`` is a thin shell over this
file and the unit tests call it directly.
"""

import datetime
import os
import stat

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError
from ansible_collections.webhosting.pods.plugins.module_utils.command import run as run_command
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import read_certificate


class CertificateError(Exception):
    """A certificate that could not be made."""


def _root_dir(path, mode):
    """``path`` as a root-owned directory with ``mode``, in a root-owned parent; a link
    is refused, never followed."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise CertificateError(f"{path} is not a directory of root")
    os.chmod(path, mode, follow_symlinks=False)


def _write(path, data, mode):
    """Write ``data`` to ``path`` through a new file renamed into place (no link followed)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def selfsigned(item):
    """The self-signed certificate of ``item`` (dir, key, cert, domains, days): an EC P-256
    key (0600) and a certificate for the domains (0644) in a root-only directory. Left
    alone when the certificate there already names exactly these domains. Returns whether
    it made one."""
    cert = read_certificate(item["cert"]) if os.path.lexists(item["cert"]) else None
    if cert and cert["dns_names"] == sorted(item["domains"]) and os.path.exists(item["key"]):
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    _root_dir(item["dir"], 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, item["domains"][0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=int(item["days"])))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in item["domains"]]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    _write(
        item["key"],
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(item["cert"], certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def issue(item, run=run_command, timeout=300):
    """Run certbot for ``item`` (argv, and eab_conf with eab_kid and eab_hmac_key when the
    CA wants an external account binding: written root-only for this run and removed
    after, never on the command line). Raises CertificateError with certbot's output."""
    argv = list(item["argv"])
    conf = item.get("eab_conf") or ""
    if conf and item.get("eab_kid"):
        text = f"eab-kid = {item['eab_kid']}\neab-hmac-key = {item['eab_hmac_key']}\n"
        _write(conf, text.encode(), 0o600)
        argv += ["--config", conf]
    try:
        proc = run(argv, timeout)
    except CommandError as exc:
        raise CertificateError(f"certbot: {exc}") from None
    finally:
        if conf and os.path.lexists(conf):
            os.unlink(conf)
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout or "").strip()
        raise CertificateError(f"certbot exited with {proc.returncode}: {text[-2000:]}")
