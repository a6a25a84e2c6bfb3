"""Ingress checked from the outside: HTTPS clients inside the lab host, never the pod.

Every request is a plain `curl`/`openssl` run as root in the lab host (its network
namespace holds nginx, the ACME CA and the pods' unix sockets), so these checks see what a
visitor sees. The tests that stop a pod, renew certificates or feed Ansible a bad hosting
put everything back and wait until both hostings serve again.
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
# the same inventory conftest.py reads (LAB_INVENTORY for hosts converged by hand)
INVENTORY = Path(
    os.environ.get("LAB_INVENTORY", Path(__file__).parents[1] / "inventory" / "hosts.yml")
)
# The hostings the lab hosts were converged with: the group_vars next to the inventory.
GROUP_VARS = INVENTORY.parent / "group_vars" / "pod_hosts.yml"
HOSTINGS = [
    h
    for h in yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
    if h.get("state", "present") == "present"
]
BY_NAME = {h["name"]: h for h in HOSTINGS}
DOMAINS = [(h["name"], d) for h in HOSTINGS for d in h["domains"]]
CURL = "curl -sS --max-time 10"


def q(*words):
    return " ".join(shlex.quote(str(w)) for w in words)


def https(lab, url, *options):
    """curl verifies the server against the lab host's trust store (Pebble's root)."""
    return lab.run(f"{CURL} {q(*options)} {q(url)}")


def status(lab, url, *options):
    out = lab.run(f"{CURL} -o /dev/null -w '%{{http_code}}' {q(*options)} {q(url)}")
    return out.stdout.strip()


def served_certificate(lab, domain, *fields):
    """Fields (-serial, -issuer, ...) of the certificate nginx serves for domain."""
    cmd = (
        f"openssl s_client -connect 127.0.0.1:443 -servername {q(domain)} </dev/null 2>/dev/null"
        f" | openssl x509 -noout {' '.join(fields)}"
    )
    return lab.check_output(cmd)


def pod_env(lab, domain, *options):
    """The CGI environment the pod saw for a request to https://domain/cgi-bin/env."""
    out = https(lab, f"https://{domain}/cgi-bin/env", "--fail", *options)
    assert out.rc == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def user_systemctl(lab, name, *args):
    return lab.run(f"systemctl --user --machine={q(name + '@')} {q(*args)}")


def all_serving(lab):
    return all(status(lab, f"https://{d}/version") == "200" for _, d in DOMAINS)


@pytest.mark.parametrize("name,domain", DOMAINS, ids=[d for _, d in DOMAINS])
def test_https_reaches_the_hostings_own_pod_with_an_acme_certificate(lab, name, domain):
    # No -k: curl checks the chain against the lab host's trust store.
    env = pod_env(lab, domain)
    assert env["hostname"] == name  # the pod's hostname is its hosting's pod name
    assert env["HTTP_HOST"] == domain
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env["HTTP_X_FORWARDED_HOST"] == domain
    issuer = served_certificate(lab, domain, "-issuer")
    assert "Pebble" in issuer, issuer
    names = served_certificate(lab, domain, "-ext", "subjectAltName")
    assert f"DNS:{domain}" in names
    page = https(lab, f"https://{domain}/")
    assert page.rc == 0 and "webhosting.pods lab httpd" in page.stdout


@pytest.mark.parametrize("name,domain", DOMAINS, ids=[d for _, d in DOMAINS])
def test_http_redirects_to_https_except_the_acme_challenge(lab, name, domain):
    out = lab.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {q(f'http://{domain}/a/b?c=1')}"
    )
    assert out.strip() == f"301 https://{domain}/a/b?c=1"
    # The challenge path is answered on port 80 itself: 404 for an unknown token...
    missing = f"http://{domain}/.well-known/acme-challenge/no-such-token"
    assert status(lab, missing) == "404"
    # ...and the token file certbot would write is served as is. certbot's webroot is
    # read from the lineage's renewal settings.
    conf = lab.check_output(f"cat /etc/letsencrypt/renewal/{q(name)}.conf")
    webroot = re.search(r"^webroot_path = ([^,\n]+)", conf, re.M).group(1).strip()
    token = f"{webroot}/.well-known/acme-challenge/molecule-ingress-check"
    lab.check_output(f"mkdir -p {q(os.path.dirname(token))} && echo token-{name} > {q(token)}")
    try:
        out = lab.run(
            f"{CURL} -i {q(f'http://{domain}/.well-known/acme-challenge/molecule-ingress-check')}"
        )
        assert out.stdout.startswith("HTTP/1.1 200"), out.stdout
        assert out.stdout.rstrip().endswith(f"token-{name}")
    finally:
        lab.run(f"rm -f {q(token)}")


@pytest.mark.parametrize("name", BY_NAME)
def test_hsts_only_where_configured(lab, name):
    domain = BY_NAME[name]["domains"][0]
    headers = lab.check_output(f"{CURL} -o /dev/null -D - {q(f'https://{domain}/version')}")
    wanted = BY_NAME[name].get("ingress", {}).get("hsts", False)
    assert ("strict-transport-security: max-age=" in headers.lower()) == wanted, headers


def test_tls_is_modern(lab):
    domain = DOMAINS[0][1]
    s_client = f"openssl s_client -connect 127.0.0.1:443 -servername {q(domain)} </dev/null"
    assert lab.run(f"{s_client} -tls1_2").rc == 0
    assert lab.run(f"{s_client} -tls1_3").rc == 0
    # The client is allowed to try TLS 1.1 (security level 0); the server must refuse it:
    # the client sent its TLS 1.1 hello and the server answered with an alert (nginx 1.22
    # sends "handshake failure", 1.26 "protocol version"); a client that cannot speak
    # TLS 1.1 fails before it sends anything ("no protocols available")
    old = lab.run(f"{s_client} -tls1_1 -cipher DEFAULT@SECLEVEL=0")
    said = old.stdout + old.stderr
    assert old.rc != 0, "TLS 1.1 handshake accepted"
    assert "no protocols available" not in said, said
    assert "SSL alert number" in said and "Protocol  : TLSv1.1" in said, said
    # HTTP/2 is offered (ALPN)
    proto = lab.check_output(
        f"{CURL} --http2 -o /dev/null -w '%{{http_version}}' {q(f'https://{domain}/version')}"
    )
    assert proto.strip() == "2"


def test_unknown_names_get_no_hostings_certificate(lab):
    out = lab.run(f"{CURL} {q('https://unknown.example.test/')}")
    assert out.rc != 0
    assert "webhosting.pods lab httpd" not in out.stdout


def test_client_ip_and_websocket_upgrade_reach_the_pod(lab):
    domain = DOMAINS[0][1]
    # A client address other than the pod's own view (127.0.0.1 from the forwarder):
    # the whole 127/8 is local, so curl can bind to 127.0.0.5.
    env = pod_env(lab, domain, "--interface", "127.0.0.5", "-H", "X-Forwarded-For: 203.0.113.7")
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 127.0.0.5"
    assert env["HTTP_X_REAL_IP"] == "127.0.0.5"
    # A websocket handshake (HTTP/1.1 Upgrade): nginx passes Upgrade and Connection on.
    ws = pod_env(
        lab,
        domain,
        "--http1.1",
        "-H", "Connection: Upgrade",
        "-H", "Upgrade: websocket",
        "-H", "Sec-WebSocket-Version: 13",
        "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    )  # fmt: skip
    assert ws.get("HTTP_UPGRADE") == "websocket", ws
    assert ws.get("HTTP_CONNECTION", "").lower() == "upgrade", ws
    assert ws.get("HTTP_SEC_WEBSOCKET_KEY") == "dGhlIHNhbXBsZSBub25jZQ=="
    plain = pod_env(lab, domain, "--http1.1")
    assert "HTTP_UPGRADE" not in plain and plain.get("HTTP_CONNECTION") == "close"


def test_request_limits(lab):
    # client_max_body_size (64m by default): a bigger body gets 413 from nginx itself.
    domain = DOMAINS[0][1]
    code = lab.run(
        f"head -c 70000000 /dev/zero | {CURL} -o /dev/null -w '%{{http_code}}' "
        f"--data-binary @- {q(f'https://{domain}/cgi-bin/env')}"
    )
    assert code.stdout.strip() == "413", code.stderr


@pytest.mark.parametrize("name", BY_NAME)
def test_socket_only_nginx_and_the_tenant_may_use(lab, name):
    port = BY_NAME[name].get("socket_ports", [8080])[0]
    sock = f"/run/webhosting-pods/{name}/{port}"
    f = lab.file(sock)
    assert f.is_socket and f.user == name and f.mode == 0o660
    acl = lab.check_output(f"getfacl -cp {q(sock)}")
    assert "user:www-data:rw-" in acl
    url = "http://pod/version"
    as_nginx = lab.run(f"runuser -u www-data -- {CURL} --unix-socket {q(sock)} {url}")
    assert as_nginx.rc == 0, as_nginx.stderr
    for other in BY_NAME:
        if other != name:
            refused = lab.run(f"runuser -u {q(other)} -- {CURL} --unix-socket {q(sock)} {url}")
            assert refused.rc != 0, f"tenant {other} reached the socket of {name}"


@pytest.mark.parametrize("name", BY_NAME)
def test_forwarder_is_event_driven_and_has_a_backlog(lab, name):
    """64 concurrent clients, no 502; one proxy process, not one per connection."""
    domain = BY_NAME[name]["domains"][0]
    port = BY_NAME[name].get("socket_ports", [8080])[0]
    proxy = f"pgrep -u {q(name)} -f {q(f'systemd-socket-proxyd .*127.0.0.1:{port}$')}"
    # Count the proxy processes while 64 clients are busy, then collect the status codes.
    out = lab.check_output(
        "codes=$(mktemp); "
        f"(seq 128 | xargs -P 64 -I@ {CURL} -o /dev/null -w '%{{http_code}}\n' "
        f"{q(f'https://{domain}/version')} > $codes) & "
        f"sleep 1; echo busy=$({proxy} | wc -l); wait; cat $codes; rm -f $codes"
    ).split()
    assert out[0] == "busy=1", out[0]
    codes = out[1:]
    assert len(codes) == 128 and set(codes) == {"200"}, sorted(set(codes))
    # That one process is the forwarder, inside the pod's network namespace.
    pid = lab.check_output(proxy).strip()
    netns = lab.check_output(f"readlink /proc/{pid}/ns/net")
    assert netns != lab.check_output("readlink /proc/1/ns/net")


def test_no_host_tcp_listener_for_any_pod_port(lab):
    ports = set()
    for h in HOSTINGS:
        ports.update(h.get("socket_ports", [8080]))
        for c in h["pod"]["spec"]["containers"]:
            ports.update(p["containerPort"] for p in c.get("ports", []))
    listening = set()
    for line in lab.check_output("ss -ltnH").splitlines():
        local = line.split()[3]
        listening.add(int(local.rsplit(":", 1)[1]))
    assert not ports & listening, f"pod ports listened on by the host: {ports & listening}"
    # No port forwarder of these hostings either (another hosting may publish a port).
    users = ",".join(BY_NAME)
    assert lab.run(f"pgrep -u {q(users)} -x rootlessport").rc == 1  # none (2: an error)


def test_static_path_survives_a_stopped_pod_which_alone_gets_502(lab, wait_until):
    name = next(n for n, h in BY_NAME.items() if h.get("ingress", {}).get("static_paths"))
    prefix = BY_NAME[name]["ingress"]["static_paths"][0]["prefix"]
    domain = BY_NAME[name]["domains"][0]
    others = [h["domains"][0] for n, h in BY_NAME.items() if n != name]
    static_dir = f"/srv/hostings/{name}/www{prefix}"
    port = BY_NAME[name].get("socket_ports", [8080])[0]
    sock = f"/run/webhosting-pods/{name}/{port}"
    # The tenant writes a file into its www/ (as the hosting user).
    lab.check_output(
        f"runuser -u {q(name)} -- sh -c "
        + q(f"mkdir -p {static_dir} && echo static-{name} > {static_dir}/molecule.txt")
    )
    url = f"https://{domain}{prefix}/molecule.txt"
    try:
        assert https(lab, url, "--fail").stdout.strip() == f"static-{name}"
        stop = user_systemctl(lab, name, "stop", "webhosting-pod.service")
        assert stop.rc == 0, stop.stderr
        # The forwarder stopped with the pod and removed its socket.
        wait_until(f"{sock} to go away", lambda: not lab.file(sock).exists, 15, 0.5)
        assert https(lab, url, "--fail").stdout.strip() == f"static-{name}"
        assert status(lab, f"https://{domain}/version") == "502"
        for other in others:
            assert status(lab, f"https://{other}/version") == "200"
        # Nothing outside the static prefix is served from www/.
        assert status(lab, f"https://{domain}/molecule.txt") == "502"
    finally:
        user_systemctl(lab, name, "start", "webhosting-pod.service")
        wait_until(
            f"https://{domain}/ to answer 200 again",
            lambda: status(lab, f"https://{domain}/version") == "200",
            90,
            0.5,
        )
        lab.run(f"rm -f {q(static_dir + '/molecule.txt')}")
    # The socket was re-created for the new pod, with the same rights.
    f = lab.file(sock)
    assert f.is_socket and f.user == name and f.mode == 0o660
    assert all_serving(lab)


def test_lineages_issued_side_by_side_read_as_made_in_place(lab):
    """The first converge asks for the first certificate in /etc/letsencrypt and the others
    side by side in run directories (webhosting.pods.certificates): their lineages must
    name /etc/letsencrypt only, and certbot must list every one as valid."""
    listed = lab.run("certbot certificates")
    assert listed.rc == 0, listed.stderr
    assert "invalid" not in (listed.stdout + listed.stderr).lower(), listed.stdout + listed.stderr
    for name in BY_NAME:
        conf = lab.check_output(f"cat /etc/letsencrypt/renewal/{q(name)}.conf")
        assert f"archive_dir = /etc/letsencrypt/archive/{name}\n" in conf, conf
        assert f"fullchain = /etc/letsencrypt/live/{name}/fullchain.pem\n" in conf, conf
        assert not re.search(r"^(config|work|logs)_dir\b", conf, re.M), conf
        assert f"Certificate Name: {name}\n" in listed.stdout
        target = lab.check_output(f"readlink /etc/letsencrypt/live/{q(name)}/fullchain.pem")
        assert target.strip().startswith(f"../../archive/{name}/fullchain"), target
    left = lab.check_output("ls -A /etc/letsencrypt")
    assert ".webhosting-pods-run-" not in left, left


def test_renewal_replaces_certificates_without_a_playbook_run(lab, wait_until):
    """certbot.timer's service renews; the deploy hook reloads nginx."""
    assert lab.service("certbot.timer").is_enabled
    assert lab.service("certbot.timer").is_running
    # The unit the timer starts runs `certbot renew`: renewal is due only for certificates
    # close to expiry (30 days), so the lab hosts must be booted with short-lived ones.
    lifetime = served_certificate(lab, DOMAINS[0][1], "-startdate", "-enddate")
    dates = dict(line.split("=", 1) for line in lifetime.splitlines())
    remaining = lab.check_output(f"echo $(( $(date -d {q(dates['notAfter'])} +%s) - $(date +%s) ))")
    assert int(remaining) < 30 * 86400, (
        "the lab's certificates are not due for renewal: boot the lab host with "
        "`labctl up NAME --cert-validity 86400` (molecule's create.yml does)"
    )
    before = {d: served_certificate(lab, d, "-serial") for _, d in DOMAINS}
    run = lab.run("systemctl start certbot.service")
    assert run.rc == 0, lab.run("journalctl -u certbot.service -n 30 --no-pager").stdout
    for _, domain in DOMAINS:
        wait_until(
            f"nginx to serve a new certificate for {domain}",
            lambda d=domain: served_certificate(lab, d, "-serial") != before[d],
            30,
            0.5,
        )
        assert "Pebble" in served_certificate(lab, domain, "-issuer")
    assert all_serving(lab)


def test_a_bad_hosting_config_is_refused_while_the_others_keep_serving(lab, tmp_path):
    """Give one hosting a broken certificate file: nginx -t refuses it, the play names it,
    its previous server is put back, and every hosting keeps serving."""
    victim = HOSTINGS[-1]["name"]
    vhost = f"/etc/nginx/webhosting-pods.d/{victim}.conf"
    before = lab.check_output(f"sha256sum {q(vhost)}")
    hostings = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
    for h in hostings:
        if h["name"] == victim:
            h.setdefault("ingress", {}).update(
                certificate_source="files",
                certificate_file="/etc/hostname",
                certificate_key_file="/etc/hostname",
            )
    extra = tmp_path / "bad-ingress.yml"
    extra.write_text(yaml.safe_dump({"webhosting_hostings": hostings}))
    playbook = tmp_path / "ingress.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Ingress only",
                    "hosts": "pod_hosts",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Route the hostings through nginx",
                            "ansible.builtin.include_role": {"name": "webhosting.pods.ingress"},
                        }
                    ],
                }
            ]
        )
    )
    env = dict(os.environ)
    env.update(
        PATH=f"{PROJECT}/lab/bin:{PROJECT}/.venv/bin:{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        MOLECULE_PROJECT_DIRECTORY=str(PROJECT),
        ANSIBLE_FORCE_COLOR="false",
    )
    player = shutil.which("ansible-playbook", path=env["PATH"])
    proc = subprocess.run(
        [player, "-i", str(INVENTORY), "--limit", lab.backend.name, "-e", f"@{extra}",
         str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"Refuse the nginx server of {victim}" in out, out[-3000:]
    assert "fails nginx -t and was reverted" in out
    assert 'cannot load certificate "/etc/hostname"' in out
    assert lab.check_output(f"sha256sum {q(vhost)}") == before
    assert lab.run("nginx -t -q").rc == 0
    assert all_serving(lab)
    assert "Pebble" in served_certificate(lab, BY_NAME[victim]["domains"][0], "-issuer")
