"""A hosting moves between two pod hosts (playbooks/move.yml), as an admin does it, checked
from the outside: the tenant's files are uploaded over OpenSSH's sftp on the old host and
a container writes some of its own; the move is run with ansible-playbook; then HTTPS
through each host's nginx with curl (the lab's trust store), the files' checksums and
owners, the tenant's SFTP login and the certificate on the new host, and what is left on
the old one. Two moves that cannot be done are tried first: the hosting must stay where it
was, serving. Finally site.yml with the inventory updated changes nothing on either host.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

OLD, NEW = "move-bookworm", "move-trixie"
ROOT = "/srv/hostings/mover"
WORK = "/root/move-test"
CURL = "curl -sS --max-time 30"
# Each lab host runs its own ACME CA (Pebble, a new root at every boot), where a provider's
# hosts share one public CA: on the new host, the moved certificate is checked against
# the old host's root, copied here.
OLD_ROOT = f"{WORK}/old-pebble-root.pem"
STAY_PID = "systemctl --user --machine=stay@ show --property=MainPID --value webhosting-pod.service"
# the files the manifest and these checks compare: the tenant's and the containers'
TREE = f"{ROOT}/data {ROOT}/www {ROOT}/private/container-config {ROOT}/scripts"


def q(*words):
    return " ".join(shlex.quote(str(w)) for w in words)


def page(lab, domain, path="/site/index.html", cacert=None):
    """(status, body) of https://DOMAIN/PATH through the lab host's own nginx (the lab
    image serves the hosting's www/ below /site/), the certificate checked against the lab
    host's trust store or ``cacert``."""
    option = f"--cacert {cacert} " if cacert else ""
    out = lab.run(f"{CURL} {option}-w '\\n%{{http_code}}' https://{domain}{path}")
    if out.rc != 0:
        return 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def listing(lab, subuid_start):
    """Every file of the tenant's tree with its SHA-256, mode and owners (subordinate ids
    relative to the hosting's range on that host)."""
    out = lab.check_output(
        f"find {TREE} -printf '%p %y %m %U %G\\n' | sort; "
        f"find {TREE} -type f -print0 | sort -z | xargs -0 sha256sum"
    )

    def rel(ident):
        ident = int(ident)
        return f"sub+{ident - subuid_start}" if ident >= subuid_start else str(ident)

    lines = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 5:
            parts[3], parts[4] = rel(parts[3]), rel(parts[4])
        lines.append(" ".join(parts))
    return lines


def subuid_start(lab, user):
    for line in lab.file("/etc/subuid").content_string.splitlines():
        name, start, _count = line.split(":")
        if name == user:
            return int(start)
    raise AssertionError(f"{user} has no subordinate ids")


def fingerprint(lab, path):
    return lab.check_output(f"openssl x509 -in {path} -noout -fingerprint -sha256")


def move(project, hosting, source, target, *extra):
    """ansible-playbook playbooks/move.yml, as an admin runs it; (rc, output)."""
    project, inventory = project
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(project / "ansible.cfg"))
    env["PATH"] = f"{project / 'lab' / 'bin'}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    argv = ["ansible-playbook", "-i", str(inventory), str(project / "playbooks" / "move.yml")]
    argv += [
        "-e",
        f"move_hosting={hosting}",
        "-e",
        f"move_from={source}",
        "-e",
        f"move_to={target}",
    ]
    proc = subprocess.run(
        argv + list(extra), capture_output=True, text=True, env=env, timeout=1800, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def old(lab_host):
    return lab_host(OLD)


@pytest.fixture(scope="module")
def new(lab_host):
    return lab_host(NEW)


@pytest.fixture(scope="module")
def before(old, new, sftp, wait_until):
    """The tenant's files on the old host: uploaded over SFTP (a page, 4 MiB of data in a
    folder of its own, an env file), a file the container writes as a subordinate uid (the
    provider's cron job), and what the checks compare later."""
    old.check_output(
        f"mkdir -p {WORK} && cd {WORK} && head -c 4194304 /dev/urandom > blob"
        " && printf '<h1>moved page</h1>\\n' > index.html && printf 'NOTE=kept\\n' > env"
        " && chmod 0644 blob index.html env"
    )
    res = sftp(
        old,
        "mover",
        1,
        [
            f"put {WORK}/index.html /www/index.html",
            "-mkdir /data/uploads",
            f"put {WORK}/blob /data/uploads/blob",
            f"put {WORK}/env /private/container-config/mover-web.env",
        ],
    )
    assert res.rc == 0, res.stderr
    res = old.run("systemctl --user --machine=mover@ start webhosting-cron@stamp.service")
    assert res.rc == 0, res.stderr
    wait_until("the cron job's file", lambda: old.file(f"{ROOT}/data/stamp").exists, 60, 1)
    start = subuid_start(old, "mover")
    assert old.file(f"{ROOT}/data/stamp").uid >= start  # a subordinate uid wrote it
    status, body = page(old, "mover.example.test")
    assert status == 200 and "moved page" in body, (status, body)
    roots = old.check_output(
        "cat /usr/local/share/ca-certificates/webhosting-pods-lab-pebble-root-*.crt"
    )
    new.check_output(f"mkdir -p {WORK} && printf '%s\\n' {q(roots)} > {OLD_ROOT}")
    return {
        "listing": listing(old, start),
        "cert": fingerprint(old, "/etc/letsencrypt/live/mover/cert.pem"),
        "stay_pid": new.check_output(STAY_PID),
    }


@pytest.fixture(scope="module")
def failed_move(before, project):
    """A move whose converge on the new host fails (after the unpack: the bring-up module
    refuses to start no manager at a time)."""
    return move(project, "mover", OLD, NEW, "-e", "hosting_start_parallel=0")


@pytest.fixture(scope="module")
def clash(failed_move, project):
    """stay has the uid of move-bookworm's anchor: it cannot move there."""
    return move(project, "stay", NEW, OLD)


@pytest.fixture(scope="module")
def moved(clash, project):
    rc, out = move(project, "mover", OLD, NEW)
    assert rc == 0, out[-6000:]
    return out


def test_a_move_that_fails_on_the_new_host_leaves_the_hosting_running_on_the_old(
    failed_move, old, new, before, sftp
):
    rc, out = failed_move
    assert rc != 0
    assert "is NOT moved and runs on move-bookworm again" in out, out[-4000:]
    status, body = page(old, "mover.example.test")
    assert status == 200 and "moved page" in body, (status, body)
    assert listing(old, subuid_start(old, "mover")) == before["listing"]
    # the tenant can log in again on the old host
    assert sftp(old, "mover", 1, ["ls /data/uploads"]).rc == 0
    # nothing of it is left on the new host but its archive
    assert not new.user("mover").exists
    assert not new.file(ROOT).exists
    assert not new.file("/etc/nginx/webhosting-pods.d/mover.conf").exists
    assert new.run("ls /var/backups/webhosting-pods/mover-*.tar.gz").rc == 0


def test_a_move_onto_a_host_where_the_uid_is_taken_changes_nothing(clash, new, before):
    rc, out = clash
    assert rc != 0
    assert "10033" in out, out[-4000:]
    status, body = page(new, "stay.example.test", "/")
    assert status == 200, (status, body)
    pid = new.check_output(STAY_PID)
    assert pid == before["stay_pid"]  # not even restarted


def test_the_new_host_serves_the_moved_hosting_over_https(moved, new):
    for domain in ("mover.example.test", "www.mover.example.test"):
        status, body = page(new, domain, cacert=OLD_ROOT)
        assert status == 200 and "moved page" in body, (domain, status, body)


def test_the_tenants_files_arrived_identical(moved, new, before):
    assert new.user("mover").uid == 10031 and new.group("mover").gid == 10031
    assert listing(new, subuid_start(new, "mover")) == before["listing"]
    assert "identical on both hosts" in moved
    downtime = float(re.search(r"down for\s+([0-9.]+) s", moved).group(1))
    assert 0 < downtime < 600


def test_the_certificate_moved_and_renews_on_the_new_host(moved, new, before):
    assert fingerprint(new, "/etc/letsencrypt/live/mover/cert.pem") == before["cert"]
    served = new.check_output(
        "echo | openssl s_client -connect 127.0.0.1:443 -servername mover.example.test 2>/dev/null"
        " | openssl x509 -noout -fingerprint -sha256"
    )
    assert served == before["cert"]
    # certbot on the new host knows the lineage and has the account it names (a renewal
    # cannot be tried here: the new lab host's CA is another Pebble, which knows neither)
    res = new.run("certbot certificates --cert-name mover")
    assert res.rc == 0 and "Domains: mover.example.test www.mover.example.test" in res.stdout, res
    account = new.check_output("sed -n 's/^account = //p' /etc/letsencrypt/renewal/mover.conf")
    assert new.run(f"find /etc/letsencrypt/accounts -type d -name {account} | grep -q .").rc == 0


def test_the_tenant_logs_in_on_the_new_host_with_the_same_key(moved, new, sftp):
    res = sftp(new, "mover", 1, ["ls /data/uploads", "ls /www"])
    assert res.rc == 0, res.stderr
    assert "blob" in res.stdout and "index.html" in res.stdout
    assert (
        new.run("systemctl --user --machine=mover@ is-active webhosting-cron-stamp.timer").rc == 0
    )


def test_the_old_host_keeps_only_the_archive(moved, old):
    assert not old.user("mover").exists
    assert not old.file(ROOT).exists
    assert not old.file("/etc/nginx/webhosting-pods.d/mover.conf").exists
    assert not old.file("/etc/letsencrypt/renewal/mover.conf").exists
    assert old.run("ls /var/backups/webhosting-pods/mover-2*.tar.gz").rc == 0
    status, _ = page(old, "anchor.example.test", "/")
    assert status == 200


def test_site_yml_with_the_inventory_moved_changes_nothing(moved, tmp_path, project, run_site):
    inventory = tmp_path / "inventory"
    shutil.copytree(project[1].parent, inventory, symlinks=False)
    old_vars = yaml.safe_load((inventory / "host_vars" / f"{OLD}.yml").read_text())
    new_vars = yaml.safe_load((inventory / "host_vars" / f"{NEW}.yml").read_text())
    entry = next(h for h in old_vars["webhosting_hostings"] if h["name"] == "mover")
    old_vars["webhosting_hostings"].remove(entry)
    new_vars["webhosting_hostings"].append(entry)
    (inventory / "host_vars" / f"{OLD}.yml").write_text(yaml.safe_dump(old_vars))
    (inventory / "host_vars" / f"{NEW}.yml").write_text(yaml.safe_dump(new_vars))
    # both hosts in one run (Ansible's forks)
    rc, stats, out = run_site([OLD, NEW], inventory=inventory / "hosts.yml")
    assert rc == 0, out[-6000:]
    assert stats[OLD]["changed"] == 0 and stats[NEW]["changed"] == 0, stats
