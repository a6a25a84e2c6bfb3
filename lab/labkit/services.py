# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab services (machine binaries, lab host network namespace): DNS, Pebble, registry."""

import hashlib
import json
import os
import secrets
import shutil
import time

from .ca import ensure_ca, issue_cert
from .config import (
    DNS_MGMT_PORT,
    MARKER_ENV,
    PEBBLE_MGMT_PORT,
    PEBBLE_PORT,
    REGISTRY_HOST,
    REGISTRY_PORT,
    REGISTRY_USER,
    TRUST_DIR,
)
from .hosts import host_dir, host_run, host_write, listening, nsenter_net, save_state
from .procs import (
    marked_pids,
    proc_matches,
    proc_record,
    proc_stat,
    start_logged,
    stop_pids,
)
from .util import LabError, clean_env, read_text, run, tail, write_file

SERVICES = ("dns", "pebble", "registry")
# The lab's tenant SFTP keys (tenant_keys): 1 and 2 for two hostings, 3 for none.
TENANT_KEYS = (1, 2, 3)


def service_specs(name, st):
    hd = host_dir(name)
    sd = os.path.join(hd, "services")
    return {
        "dns": {
            "argv": [
                "/usr/bin/pebble-challtestsrv",
                "-dns01",
                "127.0.0.1:53",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{DNS_MGMT_PORT}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            "env": {},
            "ports": [("udp", 53), ("tcp", DNS_MGMT_PORT)],
            "log": os.path.join(sd, "dns.log"),
        },
        "pebble": {
            "argv": [
                "/usr/bin/pebble",
                "-config",
                os.path.join(sd, "pebble-config.json"),
                "-dnsserver",
                "127.0.0.1:53",
            ],
            "env": {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            "ports": [("tcp", PEBBLE_PORT), ("tcp", PEBBLE_MGMT_PORT)],
            "log": os.path.join(sd, "pebble.log"),
        },
        "registry": {
            "argv": [registry_binary(), "serve", os.path.join(sd, "registry.yml")],
            "env": {},
            "ports": [("tcp", REGISTRY_PORT)],
            "log": os.path.join(sd, "registry.log"),
        },
    }


def registry_binary():
    for path in ("/usr/bin/docker-registry", "/usr/bin/registry"):
        if os.access(path, os.X_OK):
            return path
    raise LabError("docker-registry binary not found (run `labctl deps`)")


def prepare_service_files(name, st):
    """Configs, certificates and credentials of the lab services (kept across lab reboots)."""
    hd = host_dir(name)
    sd = os.path.join(hd, "services")
    os.makedirs(sd, mode=0o700, exist_ok=True)
    if not os.path.exists(os.path.join(sd, "pebble-cert.pem")):
        issue_cert(sd, "pebble", ["pebble.example.test", "localhost"], ["127.0.0.1", "::1"])
    if not os.path.exists(os.path.join(sd, "registry-cert.pem")):
        issue_cert(sd, "registry", [REGISTRY_HOST, "localhost"], ["127.0.0.1", "::1"])
    pebble = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{PEBBLE_PORT}",
            "managementListenAddress": f"127.0.0.1:{PEBBLE_MGMT_PORT}",
            "certificate": os.path.join(sd, "pebble-cert.pem"),
            "privateKey": os.path.join(sd, "pebble-key.pem"),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    if st.get("cert_validity"):
        pebble["pebble"]["certificateValidityPeriod"] = int(st["cert_validity"])
    write_file(os.path.join(sd, "pebble-config.json"), json.dumps(pebble, indent=2) + "\n")

    pwfile = os.path.join(hd, "registry-password")
    if not os.path.exists(pwfile):
        write_file(
            pwfile, shared(st, "registry-password") or secrets.token_urlsafe(18) + "\n", 0o600
        )
    password = read_text(pwfile).strip()
    htpasswd = os.path.join(sd, "htpasswd")
    if not os.path.exists(htpasswd):
        run(
            ["htpasswd", "-B", "-i", "-c", htpasswd, REGISTRY_USER],
            input=password + "\n",
            capture=True,
            what="htpasswd",
        )
    storage = os.path.join(hd, "registry-storage")
    os.makedirs(storage, exist_ok=True)
    secret_file = os.path.join(sd, "registry-http-secret")
    if not os.path.exists(secret_file):
        write_file(secret_file, secrets.token_hex(24), 0o600)
    # JSON is YAML: no PyYAML needed on the machine for this
    config = {
        "version": 0.1,
        "log": {
            "level": "info",
            "formatter": "text",
            "fields": {"service": "registry", "lab": name},
        },
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": f"127.0.0.1:{REGISTRY_PORT}",
            "secret": read_text(secret_file).strip(),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            "tls": {
                "certificate": os.path.join(sd, "registry-cert.pem"),
                "key": os.path.join(sd, "registry-key.pem"),
            },
        },
        "auth": {"htpasswd": {"realm": "webhosting-pods-lab", "path": htpasswd}},
    }
    write_file(os.path.join(sd, "registry.yml"), json.dumps(config, indent=2) + "\n", 0o600)
    shutil.copyfile(os.path.join(ensure_ca(), "ca.pem"), os.path.join(hd, "lab-ca.pem"))
    return password


def start_service(name, st, key, spec, spid):
    hd = host_dir(name)
    proc = start_logged(
        nsenter_net(spid, spec["argv"]),
        spec["log"],
        env=clean_env({MARKER_ENV: hd, **spec["env"]}),
        comm=os.path.basename(spec["argv"][0])[:15],
        what=f"lab service {key}",
        timeout=5,
        header_argv=spec["argv"],
        cwd=os.path.dirname(spec["log"]),
    )
    st.setdefault("services", {})[key] = proc_record(proc.pid)
    save_state(name, st)
    return proc


def wait_ports(name, spid, key, spec, proc, timeout=20):
    deadline = time.monotonic() + timeout
    want = set(spec["ports"])
    while True:
        if proc is not None and proc.poll() is not None:
            raise LabError(
                f"lab service {key} exited with status {proc.returncode}; "
                f"log {spec['log']}:\n" + tail(spec["log"])
            )
        have = listening(spid)
        if want <= have:
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"lab service {key} does not listen on {sorted(want - have)}; "
                f"log {spec['log']}:\n" + tail(spec["log"])
            )
        time.sleep(0.2)


def stop_services(name, st):
    recs = [r for r in (st or {}).get("services", {}).values() if r]
    hd = host_dir(name)
    for p in marked_pids(hd):
        stat = proc_stat(p)
        if stat and stat[0] != "systemd-nspawn" and all(r["pid"] != p for r in recs):
            recs.append(proc_record(p))
    stop_pids([r for r in recs if r], f"lab services of {name}")
    if st is not None:
        st["services"] = {}


def services_healthy(name, st, spid):
    recs = st.get("services") or {}
    for key in SERVICES:
        if not proc_matches(recs.get(key)):
            return f"lab service {key} is not running"
    try:
        have = listening(spid)
    except LabError as exc:
        return str(exc)
    for key, spec in service_specs(name, st).items():
        missing = set(spec["ports"]) - have
        if missing:
            return f"lab service {key} does not listen on {sorted(missing)}"
    return None


def curl_in_host_net(spid, url, config="", out=None, check=True, args=()):
    """GET url from the lab host's network namespace, trusting the lab CA.

    The lab's names resolve to 127.0.0.1; config (curl -K, e.g. the credentials) is read
    from stdin; out: a file for the body; args: more curl options (method, headers, data).
    Returns run()'s result (check=False: rc too).
    """
    argv = [
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "10",
        "--cacert",
        os.path.join(ensure_ca(), "ca.pem"),
        "--resolve",
        f"{REGISTRY_HOST}:{REGISTRY_PORT}:127.0.0.1",
        "--resolve",
        f"pebble.example.test:{PEBBLE_PORT}:127.0.0.1",
        "-K",
        "-",
        *args,
        url,
    ]
    if out:
        argv[1:1] = ["-o", out]
    return run(nsenter_net(spid, argv), input=config, check=check, capture=True, what=f"GET {url}")


def shared(st, relative):
    """The text of a file of the lab host this one shares its credentials with (``labctl up
    --share-with``: two pod hosts of one provider, as the move scenario needs: one registry
    login, the tenants' same keys), or None."""
    other = st.get("share_with")
    if not other:
        return None
    path = os.path.join(host_dir(other), relative)
    if not os.path.exists(path):
        raise LabError(f"--share-with {other}: {path} is missing (boot {other} first)")
    return read_text(path)


def tenant_keys(name, st, spid):
    """SFTP key pairs for the lab's tenants: made once per lab host in its directory
    (tenant-keys/N and N.pub, for the inventory's sftp.authorized_keys), or those of the
    host it shares credentials with, and copied into the lab host as /root/tenant-keys/N
    (0600), where the tests' sftp client uses them."""
    directory = os.path.join(host_dir(name), "tenant-keys")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for number in TENANT_KEYS:
        private = os.path.join(directory, str(number))
        if not os.path.exists(private + ".pub") and st.get("share_with"):
            for suffix in ("", ".pub"):
                text = shared(st, f"tenant-keys/{number}{suffix}")
                write_file(private + suffix, text, 0o600 if not suffix else 0o644)
        if not os.path.exists(private + ".pub"):
            for path in (private, private + ".pub"):
                if os.path.exists(path):
                    os.unlink(path)
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"lab tenant {number} of {name}",
                    "-f",
                    private,
                ],
                capture=True,
                what="ssh-keygen",
            )
        host_write(spid, f"/root/tenant-keys/{number}", read_text(private), mode="0600")
        host_write(spid, f"/root/tenant-keys/{number}.pub", read_text(private + ".pub"))


def start_services(name, st, spid):
    """Start DNS, Pebble and the registry in the lab host's netns; trust their CAs."""
    t0 = time.monotonic()
    hd = host_dir(name)
    stop_services(name, st)
    password = prepare_service_files(name, st)
    specs = service_specs(name, st)
    for key in SERVICES:
        proc = start_service(name, st, key, specs[key], spid)
        wait_ports(name, spid, key, specs[key], proc)
    # Pebble makes a new root at every start: fetch it and trust it
    for what, path in (("roots", "pebble-root.pem"), ("intermediates", "pebble-intermediate.pem")):
        tmp = os.path.join(hd, f".{path}.tmp")
        curl_in_host_net(spid, f"https://127.0.0.1:{PEBBLE_MGMT_PORT}/{what}/0", out=tmp)
        os.rename(tmp, os.path.join(hd, path))
    ca_pem = read_text(os.path.join(ensure_ca(), "ca.pem"))
    host_write(spid, f"{TRUST_DIR}/webhosting-pods-lab-ca.crt", ca_pem)
    # Every root this host has seen stays trusted (one file per root): a real ACME CA keeps
    # its root across restarts, so certificates issued before a `labctl reboot` must still
    # verify after it.
    pebble_root = read_text(os.path.join(hd, "pebble-root.pem"))
    digest = hashlib.sha256(pebble_root.encode()).hexdigest()[:16]
    host_write(spid, f"{TRUST_DIR}/webhosting-pods-lab-pebble-root-{digest}.crt", pebble_root)
    host_run(spid, ["update-ca-certificates"], capture=True, what="update-ca-certificates")
    tenant_keys(name, st, spid)
    # the registry answers, and only with credentials
    rc, _, _ = curl_in_host_net(
        spid, f"https://{REGISTRY_HOST}:{REGISTRY_PORT}/v2/", out="/dev/null", check=False
    )
    if rc == 0:
        raise LabError("the lab registry answers without credentials: check its auth config")
    curl_in_host_net(
        spid,
        f"https://{REGISTRY_HOST}:{REGISTRY_PORT}/v2/",
        config=f'user = "{REGISTRY_USER}:{password}"\n',
    )
    st.setdefault("timings_s", {})["services"] = round(time.monotonic() - t0, 1)
    save_state(name, st)
