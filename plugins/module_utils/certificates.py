# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates of many new hostings in one module call: the self-signed stand-in nginx
serves until the ACME certificate is there, and the ACME certificates through certbot.

For one hosting the ingress role uses community.crypto (openssl_privatekey,
openssl_csr_pipe, x509_certificate: four calls per hosting, 0.5-1 s each) and a certbot
task; here the same results come from one call for all the new hostings of a run. The
certificates are made with python3-cryptography, which those modules use too; certbot is
run once per hosting.

certbot locks its configuration directory for the whole run (about 3 s, most of it waiting
for the CA), so runs in /etc/letsencrypt go one after another. ``issue_all`` runs several at
once, each in a directory of its own below /etc/letsencrypt with a copy of the accounts,
and then moves the lineage certbot made there into /etc/letsencrypt (``adopt``): the
archive and live directories as they are (the live links are relative) and the renewal
configuration with the paths of /etc/letsencrypt and without the directories of that run,
so that certbot's timer renews it like any other. The first certificate of each CA is
asked for in /etc/letsencrypt itself, so that the account exists (registered, with its
external account binding) before the copies are made.

No Ansible import: the module ``webhosting.pods.certificates`` is a thin shell over this
file and the unit tests call it directly.
"""

import datetime
import os
import shutil
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.webhosting.pods.plugins.module_utils.command import CommandError
from ansible_collections.webhosting.pods.plugins.module_utils.command import run as run_command
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import read_certificate


class CertificateError(Exception):
    """A certificate that could not be made."""


def _root_dir(path, mode):
    """``path`` as a root-owned directory with ``mode``, in a root-owned parent; a link
    is refused, never followed."""
    _plain_dir(path, mode)
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


def issue(item, run=run_command, timeout=300, extra=()):
    """Run certbot for ``item`` (argv, and eab_conf with eab_kid and eab_hmac_key when the
    CA wants an external account binding: written root-only for this run and removed
    after, never on the command line), with ``extra`` arguments. Raises CertificateError
    with certbot's output."""
    argv = list(item["argv"]) + list(extra)
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


# The directories of the runs side by side, below the configuration directory (the same
# file system: the lineages are renamed into place). Only this module makes them; one left
# by a run that was killed is removed by the next.
RUN_PREFIX = ".webhosting-pods-run-"
# What certbot records of its directories in a lineage's renewal settings (they would
# send the next renewal to the run's directory).
_RUN_KEYS = ("config_dir", "work_dir", "logs_dir")


def _lineage_paths(letsencrypt_dir, name):
    return {
        "archive": os.path.join(letsencrypt_dir, "archive", name),
        "live": os.path.join(letsencrypt_dir, "live", name),
        "renewal": os.path.join(letsencrypt_dir, "renewal", f"{name}.conf"),
    }


def lineage_exists(letsencrypt_dir, name):
    """Whether certbot has anything of lineage ``name`` in ``letsencrypt_dir``."""
    return any(os.path.lexists(p) for p in _lineage_paths(letsencrypt_dir, name).values())


def _plain_dir(path, mode):
    """``path`` as a directory of root (made with ``mode`` when missing, else left as it
    is); a link is refused."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise CertificateError(f"{path} is not a directory of root")


def _account_id(text):
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "account":
            return value.strip()
    return ""


def _find_account(accounts_dir, account):
    for top, dirs, _files in os.walk(accounts_dir):
        if account in dirs:
            return os.path.join(top, account)
    return None


def renewal_text(text, run_config_dir, letsencrypt_dir):
    """The renewal settings certbot wrote in ``run_config_dir`` (the ``config`` directory
    of a run's directory) as they read for ``letsencrypt_dir``: its paths there, and
    without the run's directories. Anything else naming the run's directory is refused."""
    kept = []
    for line in text.splitlines(keepends=True):
        key, sep, _value = line.partition("=")
        if sep and key.strip() in _RUN_KEYS:
            continue
        kept.append(line.replace(run_config_dir, letsencrypt_dir))
    result = "".join(kept)
    run_dir = os.path.dirname(run_config_dir)
    if run_dir in result:
        raise CertificateError(f"certbot's renewal settings still name {run_dir}")
    return result


def adopt(run_config_dir, letsencrypt_dir, name):
    """Move lineage ``name`` that certbot made in ``run_config_dir`` into
    ``letsencrypt_dir`` (which must not have one), with its account when it is not there.
    The renewal settings come last: certbot sees the lineage once they are in place."""
    source = _lineage_paths(run_config_dir, name)
    target = _lineage_paths(letsencrypt_dir, name)
    with open(source["renewal"], encoding="utf-8") as handle:
        text = renewal_text(handle.read(), run_config_dir, letsencrypt_dir)
    if lineage_exists(letsencrypt_dir, name):
        raise CertificateError(f"{letsencrypt_dir} has a lineage {name} already")
    account = _account_id(text)
    accounts = os.path.join(letsencrypt_dir, "accounts")
    if account and not _find_account(accounts, account):
        made = _find_account(os.path.join(run_config_dir, "accounts"), account)
        if made:
            rel = os.path.relpath(made, os.path.join(run_config_dir, "accounts"))
            shutil.copytree(made, os.path.join(accounts, rel), symlinks=True)
    for kind, mode in (("archive", 0o700), ("live", 0o700), ("renewal", 0o755)):
        _plain_dir(os.path.dirname(target[kind]), mode)
    os.rename(source["archive"], target["archive"])
    os.rename(source["live"], target["live"])
    mode = stat.S_IMODE(os.stat(source["renewal"]).st_mode)
    _write(target["renewal"], text.encode("utf-8"), mode)


def _challenge_dir(webroot):
    """The webroot's challenge directory, made before runs side by side: certbot removes
    the directories it made when it is done, which would pull it from under another run."""
    path = webroot
    for part in (".well-known", "acme-challenge"):
        path = os.path.join(path, part)
        _plain_dir(path, 0o755)


def _remove_left_runs(letsencrypt_dir):
    try:
        names = os.listdir(letsencrypt_dir)
    except FileNotFoundError:
        return
    for entry in names:
        if entry.startswith(RUN_PREFIX):
            shutil.rmtree(os.path.join(letsencrypt_dir, entry), ignore_errors=True)


def issue_all(items, letsencrypt_dir, parallel=1, run=run_command):
    """certbot for every item; up to ``parallel`` at once (see the top of this file).
    Returns the names issued (in the order of ``items``) and the failures by name."""
    failures = {}
    done = set()
    lock = threading.Lock()

    def here(item):
        try:
            issue(item, run)
            done.add(item["name"])
        except (CertificateError, OSError) as exc:
            failures[item["name"]] = f"ACME certificate: {exc}"

    def aside(item):
        try:
            base = tempfile.mkdtemp(prefix=RUN_PREFIX, dir=letsencrypt_dir)
        except OSError as exc:
            failures[item["name"]] = f"ACME certificate: {exc}"
            return
        try:
            config = os.path.join(base, "config")
            accounts = os.path.join(letsencrypt_dir, "accounts")
            os.mkdir(config, 0o700)
            if os.path.isdir(accounts):
                shutil.copytree(accounts, os.path.join(config, "accounts"), symlinks=True)
            extra = [
                "--config-dir",
                config,
                "--work-dir",
                os.path.join(base, "work"),
                "--logs-dir",
                os.path.join(base, "logs"),
            ]
            issue(item, run, extra=extra)
            with lock:
                adopt(config, letsencrypt_dir, item["name"])
            done.add(item["name"])
        except (CertificateError, OSError) as exc:
            failures[item["name"]] = f"ACME certificate: {exc}"
        finally:
            shutil.rmtree(base, ignore_errors=True)

    _remove_left_runs(letsencrypt_dir)
    later, first = [], {}
    for item in items:
        server = item.get("server") or ""
        if parallel <= 1 or lineage_exists(letsencrypt_dir, item["name"]) or server not in first:
            first.setdefault(server, item["name"])
            here(item)
        else:
            later.append(item)
    # A CA whose first certificate failed gets no copies of an account that may not exist.
    aside_items = [i for i in later if first[i.get("server") or ""] in done]
    for item in later:
        if item not in aside_items:
            here(item)
    try:
        for webroot in sorted({i["webroot"] for i in aside_items if i.get("webroot")}):
            _challenge_dir(webroot)
    except (CertificateError, OSError):
        # Side by side the runs would race for the challenge directory: one at a time,
        # and certbot says what is wrong with the webroot.
        for item in aside_items:
            here(item)
        aside_items = []
    if aside_items:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(aside, aside_items))
    return [i["name"] for i in items if i["name"] in done], failures
