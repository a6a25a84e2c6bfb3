"""Real applications, deployed and used the way a tenant does it.

Two tenants on each lab host (Debian 12 with podman 4.3, Debian 13 with podman 5.4), their
images built from Debian packages (lab/labkit/appimages.py):

- shop: PostgreSQL 15 and Adminer (PHP) in one pod. The tenant uploads the pod file and
  the database password (their env file) over SFTP and restarts with the trigger file;
  logs in to Adminer over HTTPS through nginx (forms, cookies, Adminer's CSRF token);
  creates a table; the provider's cron job dumps it into data/dumps/; the tenant
  downloads the dump over SFTP, drops the table and restores it through Adminer's import;
  then updates the image tag and finds the data still there.
- notes: one container with several services, supervisord as init (nginx, php-fpm and a
  worker): the application's install step, login, a note handed to the worker; the
  worker writes with umask 077 and the tenant still deletes and replaces its files.

What the containers really get is read from /proc and podman, not from the rendered
YAML: a non-root uid, no capabilities, a read-only root, tmpfs in-memory volumes, the
hosting's data/ as the only bind mount from the host.
"""

import re
import shlex
import time
import urllib.parse
from pathlib import Path

import pytest

FILES = Path(__file__).parents[1] / "files"
REGISTRY = "registry.example.test:5000"
CONFIG = "/private/container-config"
WORK = "/root/apps-work"
TENANTS = {"shop": (10021, 1), "notes": (10022, 2)}
# the database password the tenant writes into their env file (the cluster keeps the one
# of its first start: a constant, so that the checks can run again on the same hosts)
DB_PASSWORD = "lab-shop-db-5f1c0e7a92"
CURL = "curl -sS --max-time 30"


def q(*words):
    return " ".join(shlex.quote(str(w)) for w in words)


def root(name):
    return f"/srv/hostings/{name}"


def as_tenant(name, command):
    """A command as the hosting user, with the environment its podman needs."""
    uid = TENANTS[name][0]
    env = [
        f"USER={name}",
        f"XDG_RUNTIME_DIR=/run/user/{uid}",
        f"XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{name}/config",
        f"HOME=/var/lib/webhosting-pods/users/{name}",
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
    ]
    return (
        f"cd / && setpriv --reuid={uid} --regid={uid} --init-groups "
        f"env {' '.join(env)} /bin/sh -c {shlex.quote(command)}"
    )


def upload(lab, sftp, name, puts):
    """Upload each (remote path, text) as tenant NAME over OpenSSH's sftp."""
    lab.check_output(f"mkdir -p {WORK} && chmod 0755 {WORK}")
    commands = []
    for i, (remote, text) in enumerate(puts):
        local = f"{WORK}/{name}-upload-{i}"
        lab.check_output(f"printf %s {q(text)} > {local} && chmod 0644 {local}")
        commands.append(f"put {local} {remote}")
    res = sftp(lab, name, TENANTS[name][1], commands)
    assert res.rc == 0, res.stderr


def restart(lab, sftp, wait_until, name, puts=()):
    """Upload puts, drop the restart trigger; the new lines of logs/pod_restart.log once
    the restart is done or refused."""
    log = f"{root(name)}/logs/pod_restart.log"
    before = lab.run(f"cat {log}").stdout
    lab.check_output(f"mkdir -p {WORK} && touch {WORK}/empty && chmod 0644 {WORK}/empty")
    upload(lab, sftp, name, puts)
    res = sftp(
        lab, name, TENANTS[name][1], [f"put {WORK}/empty /scripts/pod_restart/pod_restart.run"]
    )
    assert res.rc == 0, res.stderr

    def done():
        new = lab.run(f"cat {log}").stdout[len(before) :]
        finished = ("pod restarted", "NOT restarted", "did not start again")
        return new if any(word in new for word in finished) else None

    # the first start pulls a 500 MB image into the hosting's own storage
    return wait_until(f"{name}'s restart", done, 600, 2)


def deploy(lab, sftp, wait_until, name, files=()):
    """The tenant uploads their pod file (files/pod-NAME.yaml) and any other files, then
    restarts the pod with the trigger."""
    pod = (f"{CONFIG}/pod-{name}.yaml", (FILES / f"pod-{name}.yaml").read_text())
    new = restart(lab, sftp, wait_until, name, [pod, *files])
    assert "pod restarted (trigger)" in new, new


class Browser:
    """curl in the lab host with a cookie jar: HTTPS through nginx, certificate checked
    against the lab host's trust store (Pebble's root), redirects followed."""

    def __init__(self, lab, domain, jar):
        self.lab, self.base, self.jar = lab, f"https://{domain}", f"{WORK}/{jar}.cookies"
        lab.check_output(f"mkdir -p {WORK} && rm -f {self.jar}")

    def request(self, path, *options):
        marker = "\n--status--"
        out = self.lab.run(
            f"{CURL} -L -c {self.jar} -b {self.jar} -w {q(marker + '%{http_code}')}"
            f" {q(*options)} {q(self.base + path)}"
        )
        assert out.rc == 0, out.stderr
        body, _, code = out.stdout.rpartition(marker)
        return int(code), body

    def get(self, path):
        return self.request(path)

    def post(self, path, fields):
        return self.request(path, "--data-binary", urllib.parse.urlencode(fields))

    def post_multipart(self, path, fields, files):
        options = []
        for key, value in fields.items():
            options += ["--form-string", f"{key}={value}"]
        for key, local in files.items():
            options += ["-F", f"{key}=@{local}"]
        return self.request(path, *options)


def token_of(body):
    match = re.search(r"name=['\"]token['\"] value=['\"]([^'\"]+)['\"]", body)
    assert match, body[-2000:]
    return match.group(1)


def container_pid(lab, name, container):
    out = lab.check_output(
        as_tenant(name, f"podman inspect --format '{{{{.State.Pid}}}}' {name}-{container}")
    )
    pid = out.strip()
    assert pid.isdigit() and pid != "0", out
    return pid


def hardening(lab, name, container):
    """What the container's main process really has: (uid map line, CapEff, mounts)."""
    pid = container_pid(lab, name, container)
    status = lab.file(f"/proc/{pid}/status").content_string
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    capeff = re.search(r"^CapEff:\s+(\S+)", status, re.M).group(1)
    mounts = {}
    for line in lab.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        mounts[fields[4]] = (fields[5].split(","), right.split()[0], fields[3])
    return int(uid), capeff, mounts


# file systems of a container that are not a folder of the host's disk
NOT_FROM_DISK = ("tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay")


def assert_hardened(lab, name, container, memory, data=True):
    """The container runs as a subordinate uid without capabilities on a read-only root,
    its in-memory volumes are tmpfs, and the hosting's data/ (when ``data``) is its only
    folder from the host's disk."""
    uid, capeff, mounts = hardening(lab, name, container)
    low, count = map(int, lab.check_output(f"grep ^{name}: /etc/subuid").split(":")[1:])
    # a subordinate uid of the hosting, never root nor the hosting user itself
    assert low <= uid < low + count, (uid, low, count)
    assert int(capeff, 16) == 0, capeff
    # the root file system is read-only
    assert "ro" in mounts["/"][0], mounts["/"]
    res = lab.run(as_tenant(name, f"podman exec {name}-{container} touch /usr/local/probe"))
    assert res.rc != 0 and "Read-only file system" in res.stderr, res.stderr
    # in-memory volumes are tmpfs (not the disk-backed volume podman 4.3 makes of emptyDir)
    for path in memory:
        assert mounts[path][1] == "tmpfs", (path, mounts[path])
    # the hosting's data/ is the only thing from the host's disk
    # (the root, "/", is the image's overlay: read-only, checked above)
    binds = {m: v for m, v in mounts.items() if m != "/" and v[1] not in NOT_FROM_DISK}
    hosting = sorted(m for m, v in binds.items() if f"{root(name)}/" in v[2] + "/")
    assert hosting == (["/data"] if data else []), binds
    if data:
        assert binds["/data"][2].endswith(f"{root(name)}/data"), binds["/data"]
    for mount, (options, fstype, source) in binds.items():
        assert (
            mount in hosting
            or mount.startswith(("/etc/", "/run/.containerenv", "/dev/"))
            or mount in ("/etc", "/run/.containerenv")
        ), (mount, options, fstype, source)


# --- shop: PostgreSQL and Adminer ------------------------------------------------------

SHOP = "shop.example.test"
ADMINER_DB = "/?pgsql=127.0.0.1&username=app&db=app&ns=public"
DUMP = f"{root('shop')}/data/dumps/app.sql"


def adminer_login(lab, password=DB_PASSWORD):
    browser = Browser(lab, SHOP, "shop")
    code, body = browser.get("/")
    assert code == 200 and "Adminer" in body, body[-2000:]
    fields = {
        "auth[driver]": "pgsql",
        "auth[server]": "127.0.0.1",
        "auth[username]": "app",
        "auth[password]": password,
        "auth[db]": "app",
    }
    return browser, browser.post("/", fields)


def adminer_error(body):
    return re.findall(r"<div class='error'>(.*?)</div>", body, re.S)


def adminer_sql(browser, query):
    code, body = browser.get(ADMINER_DB + "&sql=")
    assert code == 200, body[-2000:]
    code, body = browser.post(ADMINER_DB + "&sql=", {"query": query, "token": token_of(body)})
    assert code == 200, body[-2000:]
    return body


def db_ready(lab):
    res = lab.run(as_tenant("shop", "podman exec shop-db pg_isready --host=/run/postgresql"))
    return res.rc == 0


@pytest.fixture(scope="module")
def shop(lab, sftp, wait_until):
    """The shop, deployed through the tenant's own files: their pod file and env file."""
    env = f"# the database's password\nPOSTGRES_PASSWORD={DB_PASSWORD}\n"
    deploy(lab, sftp, wait_until, "shop", [(f"{CONFIG}/shop-db.env", env)])

    def ready():
        code, body = Browser(lab, SHOP, "probe").get("/")
        return code == 200 and "Adminer" in body

    wait_until("Adminer over HTTPS", ready, 120, 2)
    # the database creates its cluster at the first start
    wait_until("the database", lambda: db_ready(lab), 120, 2)
    return lab


def test_adminer_refuses_a_wrong_password_and_logs_in_with_the_tenants(shop):
    _, (code, body) = adminer_login(shop, "not-the-password")
    assert "password authentication failed" in body, body[-3000:]
    _, (code, body) = adminer_login(shop)
    assert code == 200, adminer_error(body) or body[-3000:]
    assert "Logout" in body and "password authentication failed" not in body, body[-3000:]


def test_a_table_made_through_adminer_lives_in_the_hostings_data(shop):
    browser, (code, body) = adminer_login(shop)
    body = adminer_sql(
        browser,
        "CREATE TABLE IF NOT EXISTS guestbook (id serial PRIMARY KEY, line text NOT NULL);"
        " INSERT INTO guestbook (line) VALUES ('first visit'), ('schön: ünïcode');",
    )
    assert "Query executed OK" in body, body[-3000:]
    body = adminer_sql(browser, "SELECT line FROM guestbook ORDER BY id")
    assert "first visit" in body and "schön: ünïcode" in body, body[-3000:]
    # the cluster is in the tenant's data/ (below the hostPath), owned by the container's
    # subordinate uid, and keeps PostgreSQL's own 0700
    pgdata = shop.file(f"{root('shop')}/data/pgdata")
    assert pgdata.is_directory and pgdata.mode & 0o777 == 0o700, oct(pgdata.mode)
    assert shop.file(f"{root('shop')}/data/pgdata/PG_VERSION").content_string.strip() == "15"


def test_the_database_and_adminer_are_hardened(shop):
    assert_hardened(shop, "shop", "db", ["/run/postgresql", "/tmp"])
    # the web container mounts nothing of the hosting: the database's files are not in reach
    assert_hardened(shop, "shop", "web", ["/var/lib/php/sessions", "/tmp"], data=False)


def test_the_cron_dump_is_the_tenants_and_restores(shop, sftp):
    browser, _ = adminer_login(shop)
    body = adminer_sql(
        browser,
        "DROP TABLE IF EXISTS orders; CREATE TABLE orders (id int PRIMARY KEY, item text);"
        " INSERT INTO orders VALUES (1, 'tea'), (2, 'grüner Tee');",
    )
    assert "Query executed OK" in body, adminer_error(body) or body[-3000:]

    # the provider's scheduled job, started now instead of at 03:00
    res = shop.run("systemctl --user --machine=shop@ start webhosting-cron@dump.service")
    assert res.rc == 0, res.stderr
    log = shop.file(f"{root('shop')}/logs/shop-cron-dump.log").content_string
    assert "cron job dump: exit status 0" in log, log
    dump = shop.file(DUMP).content_string
    assert "CREATE TABLE public.orders" in dump and "grüner Tee" in dump, dump[-2000:]

    # the tenant downloads the dump over SFTP, and may delete and replace it
    local = f"{WORK}/app.sql"
    shop.check_output(f"rm -f {local}")
    res = sftp(shop, "shop", 1, [f"get /data/dumps/app.sql {local}", "rm /data/dumps/app.sql"])
    assert res.rc == 0, res.stderr
    assert shop.file(local).content_string == dump
    assert not shop.file(DUMP).exists

    body = adminer_sql(browser, "DROP TABLE orders")
    assert "Query executed OK" in body, adminer_error(body) or body[-3000:]

    # the tenant uploads the dump again and support restores it (pg_dump 15.14 and later
    # write psql's \restrict into plain dumps: psql restores them, Adminer's import cannot)
    res = sftp(shop, "shop", 1, [f"put {local} /data/dumps/restore.sql"])
    assert res.rc == 0, res.stderr
    res = shop.run(
        as_tenant(
            "shop",
            "podman exec shop-db psql --host=/run/postgresql --username=app --dbname=app"
            " --set=ON_ERROR_STOP=1 --quiet --file=/data/dumps/restore.sql",
        )
    )
    assert res.rc == 0, res.stderr
    body = adminer_sql(browser, "SELECT item FROM orders ORDER BY id")
    assert "tea" in body and "grüner Tee" in body, adminer_error(body) or body[-3000:]
    res = sftp(shop, "shop", 1, ["rm /data/dumps/restore.sql"])
    assert res.rc == 0, res.stderr


def test_an_image_update_keeps_the_data_and_stops_the_database_cleanly(shop, sftp, wait_until):
    marker = f"before the update {time.time()}"
    browser, _ = adminer_login(shop)
    body = adminer_sql(
        browser,
        "CREATE TABLE IF NOT EXISTS visits (at timestamptz DEFAULT now(), note text);"
        f" INSERT INTO visits (note) VALUES ('{marker}');",
    )
    assert "Query executed OK" in body, adminer_error(body) or body[-3000:]
    log_path = f"{root('shop')}/logs/shop-shop.log"
    log_before = len(shop.file(log_path).content_string)

    pod = (FILES / "pod-shop.yaml").read_text().replace("/lab/php-pg:1", "/lab/php-pg:2")
    new = restart(shop, sftp, wait_until, "shop", [(f"{CONFIG}/pod-shop.yaml", pod)])
    assert "pod restarted (trigger)" in new, new
    for container in ("web", "db"):
        image = shop.check_output(
            as_tenant("shop", f"podman inspect --format '{{{{.ImageName}}}}' shop-{container}")
        )
        assert image.strip() == f"{REGISTRY}/lab/php-pg:2", image
    wait_until(
        "Adminer 2",
        lambda: Browser(shop, SHOP, "v").get("/version.php") == (200, "2\n"),
        120,
        2,
    )
    wait_until("the database", lambda: db_ready(shop), 120, 2)
    browser, _ = adminer_login(shop)
    body = adminer_sql(browser, "SELECT note FROM visits")
    assert marker in body, adminer_error(body) or body[-3000:]
    # the restart stopped PostgreSQL with SIGTERM (a clean shutdown), not SIGKILL: the new
    # server found a cluster shut down in order, with no recovery to run
    log = shop.file(log_path).content_string[log_before:]
    assert "database system is shut down" in log, log[-3000:]
    assert "not properly shut down" not in log, log[-3000:]


# --- notes: several services in one container ------------------------------------------

NOTES = "notes.example.test"


@pytest.fixture(scope="module")
def notes(lab, sftp, wait_until):
    deploy(lab, sftp, wait_until, "notes")
    # served by the application (its install page, or its login once installed)
    served = lambda: Browser(lab, NOTES, "probe").get("/")[0] in (200, 401)  # noqa: E731
    wait_until("notes over HTTPS", served, 120, 2)
    return lab


def notes_login(lab, password):
    browser = Browser(lab, NOTES, "notes")
    code, body = browser.get("/")
    assert code == 401 and "log in" in body, (code, body[-2000:])
    return browser, browser.post(
        "/", {"action": "login", "token": token_of(body), "user": "anna", "password": password}
    )


def test_notes_installs_logs_in_and_hands_work_to_its_worker(notes, wait_until):
    browser = Browser(notes, NOTES, "install")
    code, body = browser.get("/")
    assert code == 200 and "Install" in body, body[-2000:]
    code, body = browser.post(
        "/",
        {
            "action": "install",
            "token": token_of(body),
            "title": "Anna's notes",
            "user": "anna",
            "password": "correct horse battery",
        },
    )
    assert code == 401 and "log in" in body, (code, body[-2000:])
    assert notes.file(f"{root('notes')}/data/notes/config.json").exists

    _, (code, body) = notes_login(notes, "wrong password")
    assert code == 403, (code, body[-2000:])
    browser, (code, body) = notes_login(notes, "correct horse battery")
    assert code == 200 and "Logged in as anna" in body, (code, body[-2000:])
    code, body = browser.post("/", {"action": "note", "token": token_of(body), "text": "buy milk"})
    assert code == 200, body[-2000:]

    def processed():
        code, body = browser.get("/")
        return code == 200 and "processed by the worker at" in body and "BUY MILK" in body

    wait_until("the worker", processed, 60, 1)


def test_supervisord_runs_the_services_on_a_read_only_root(notes):
    assert_hardened(notes, "notes", "app", ["/run/app", "/tmp"])
    out = notes.check_output(as_tenant("notes", "podman top notes-app pid args"))
    init = [line for line in out.splitlines() if line.split()[:1] == ["1"]]
    assert init and "/usr/bin/supervisord" in init[0], out  # the container's PID 1
    for service in ("nginx: master process", "php-fpm: master process", "app-worker"):
        assert service in out, out


def test_the_workers_files_are_the_tenants_to_manage(notes, sftp):
    done = f"{root('notes')}/data/notes/done"
    names = notes.check_output(f"ls {done}").split()
    assert names, "the worker wrote nothing"
    # written by a subordinate uid of the hosting, from a process with umask 077...
    first = notes.file(f"{done}/{names[0]}")
    low, count = map(int, notes.check_output("grep ^notes: /etc/subuid").split(":")[1:])
    assert low <= first.uid < low + count, first.uid
    top = notes.check_output(as_tenant("notes", "podman top notes-app hpid args"))
    worker = [line.split()[0] for line in top.splitlines() if "app-worker" in line]
    assert worker, top
    umask = re.search(
        r"^Umask:\s+(\d+)", notes.file(f"/proc/{worker[0]}/status").content_string, re.M
    )
    assert umask.group(1) == "0077", umask
    # ...and still the tenant's: read, replaced and deleted over SFTP
    local = f"{WORK}/note.txt"
    res = sftp(
        notes,
        "notes",
        2,
        [
            f"get /data/notes/done/{names[0]} {local}",
            f"put {local} /data/notes/done/{names[0]}.copy",
            f"rm /data/notes/done/{names[0]}.copy",
            f"rename /data/notes/done/{names[0]} /data/notes/done/{names[0]}.kept",
            f"rename /data/notes/done/{names[0]}.kept /data/notes/done/{names[0]}",
        ],
    )
    assert res.rc == 0, res.stderr
    assert "BUY MILK" in notes.file(local).content_string
    # ...and no other hosting's
    res = notes.run(f"setpriv --reuid=10021 --regid=10021 --clear-groups cat {done}/{names[0]}")
    assert res.rc != 0 and "Permission denied" in res.stderr, res.stderr


def test_notes_keeps_its_data_across_a_restart(notes, sftp, wait_until):
    new = restart(notes, sftp, wait_until, "notes")
    assert "pod restarted (trigger)" in new, new
    wait_until(
        "notes over HTTPS", lambda: Browser(notes, NOTES, "probe").get("/")[0] == 401, 120, 2
    )
    browser, (code, body) = notes_login(notes, "correct horse battery")
    assert code == 200 and "BUY MILK" in body, (code, body[-2000:])


def test_nginx_keeps_connections_to_notes_alive_and_lets_them_go(notes, wait_until):
    """ingress.upstream_keepalive: 8 for notes (8 s), none for shop."""
    sockets = {name: f"/run/webhosting-pods/{name}/8080" for name in TENANTS}

    def connected(name):
        # the forwarder's side of each connection nginx holds to the hosting's socket
        out = notes.check_output("ss -xHn state connected")
        return sum(1 for line in out.splitlines() if f" {sockets[name]} " in line)

    browser = Browser(notes, NOTES, "keepalive")
    for _ in range(6):
        code, body = browser.get("/")
        assert code == 401 and "log in" in body, (code, body[-2000:])
    kept = connected("notes")
    assert 1 <= kept <= 8 * 4, kept  # idle, reused: not one per request, at most 8 per worker
    code, _ = Browser(notes, SHOP, "no-keepalive").get("/")
    assert code == 200
    assert connected("shop") == 0  # without keep-alive, nothing stays open
    wait_until("the idle connections to notes closed", lambda: connected("notes") == 0, 30, 1)
