"""Tenant operations, checked from the outside: what a tenant does over SFTP (files in the
hosting root, written as the hosting user) and what the admin sees (units, processes,
HTTP through the pod's socket, the archive of a removed hosting).

The tests run in file order and restore what they change: alpha and beta serve at the
end. The removal test is last: it removes gamma with ansible-playbook and re-creates it.
"""

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
INVENTORY = Path(
    os.environ.get("LAB_INVENTORY", Path(__file__).parents[1] / "inventory" / "hosts.yml")
)
GROUP_VARS = Path(__file__).parents[1] / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = {h["name"]: h for h in yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]}

NAME = "alpha"
OTHER = "beta"
REMOVED = "gamma"
ROOT = f"/srv/hostings/{NAME}"
POD_FILE = f"{ROOT}/private/container-config/pod-{NAME}.yaml"
TRIGGER = f"{ROOT}/scripts/pod_restart/pod_restart.run"
LOGS = f"{ROOT}/logs"
REGISTRY = "registry.example.test:5000"
UPDATE_REPO = f"{REGISTRY}/lab/tenant-ops-update"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def tenant(name, command):
    """A shell line run as the hosting user (its own uid, gid and groups; not root)."""
    h = HOSTINGS[name]
    env = [
        f"USER={name}",
        f"HOME=/var/lib/webhosting-pods/users/{name}",
        f"XDG_RUNTIME_DIR=/run/user/{h['uid']}",
        f"XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{name}/config",
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
    ]
    return (
        f"setpriv --reuid={h['uid']} --regid={h['gid']} --init-groups "
        f"env {' '.join(env)} /bin/sh -c {shlex.quote(command)}"
    )


def user_systemctl(name, *args):
    return " ".join(["systemctl", "--user", f"--machine={name}@", *map(shlex.quote, args)])


def main_pid(lab, name):
    out = lab.check_output(
        user_systemctl(name, "show", "-p", "MainPID", "--value", "webhosting-pod.service")
    )
    return int(out.strip())


def served_version(lab, name, timeout=2):
    res = lab.run(
        f"curl -sS --max-time {timeout} --unix-socket /run/webhosting-pods/{name}/8080 http://pod/version"
    )
    return res.stdout.strip() if res.rc == 0 else None


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def write_pod_file(lab, text):
    """Rewrite the tenant's pod file in place, as the tenant (an SFTP upload in place)."""
    res = lab.run(tenant(NAME, f"cat > {POD_FILE} <<'EOF'\n{text}EOF"))
    assert res.rc == 0, res.stderr


def pull_trigger(lab):
    res = lab.run(tenant(NAME, f"touch {TRIGGER}"))
    assert res.rc == 0, res.stderr


def trigger_gone(lab):
    return not lab.file(TRIGGER).exists and not lab.file(TRIGGER).is_symlink


def with_image(text, image):
    pod = yaml.safe_load(text)
    pod["spec"]["containers"][0]["image"] = image
    return yaml.safe_dump(pod, sort_keys=False)


def restart_log(lab):
    f = lab.file(f"{LOGS}/pod_restart.log")
    return f.content_string if f.exists else ""


@pytest.fixture
def pod_file(lab):
    """The tenant's pod file; restored (and the pod restarted with it) afterwards."""
    original = lab.file(POD_FILE).content_string
    yield original
    if lab.file(POD_FILE).content_string != original:
        write_pod_file(lab, original)
        pull_trigger(lab)
        assert wait_for(lambda: trigger_gone(lab), 60)
    image = yaml.safe_load(original)["spec"]["containers"][0]["image"]
    want = image.rsplit(":", 1)[1] if image.endswith((":1", ":2")) else None
    assert wait_for(lambda: served_version(lab, NAME) in ((want,) if want else ("1", "2")), 60)


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_operation_units_are_root_owned_and_waiting(lab, name):
    unit_dir = f"/var/lib/webhosting-pods/users/{name}/.config/systemd/user"
    jobs = [j["name"] for j in HOSTINGS[name].get("cron_jobs", [])]
    timers = ["webhosting-pod-update.timer"] + [f"webhosting-cron-{j}.timer" for j in jobs]
    for unit in timers + ["webhosting-pod-restart.service", "webhosting-pod-update.service"]:
        f = lab.file(f"{unit_dir}/{unit}")
        assert f.exists and f.user == "root" and not f.mode & 0o022, unit
    out = lab.run(user_systemctl(name, "is-active", *timers))
    assert out.stdout.split() == ["active"] * len(timers), out.stdout + out.stderr
    trigger = lab.run(f"systemctl is-active webhosting-trigger@{name}.path")
    assert trigger.stdout.strip() == "active"
    assert lab.file("/etc/systemd/system/webhosting-trigger@.path").user == "root"


def test_dropped_cron_job_loses_its_timer(lab):
    # beta's inventory has one job; no timer of any other name exists for it.
    unit_dir = "/var/lib/webhosting-pods/users/beta/.config/systemd/user"
    listed = lab.check_output(f"ls {unit_dir} {unit_dir}/default.target.wants")
    cron = {w for w in listed.split() if w.startswith("webhosting-cron-")}
    assert cron == {"webhosting-cron-dump.timer"}


# ---------------------------------------------------------------------------------------------
# Restart trigger
# ---------------------------------------------------------------------------------------------
def test_trigger_restarts_the_pod_with_the_edited_spec(lab, pod_file):
    before = served_version(lab, NAME)
    assert before in ("1", "2")
    want = "2" if before == "1" else "1"
    write_pod_file(lab, with_image(pod_file, f"{REGISTRY}/lab/httpd:{want}"))
    start = time.monotonic()
    seen = len(restart_log(lab))  # what earlier tests wrote there is not this test's
    pull_trigger(lab)
    assert wait_for(lambda: served_version(lab, NAME) == want, 30), restart_log(lab)
    elapsed = time.monotonic() - start
    assert wait_for(lambda: trigger_gone(lab), 10)
    assert wait_for(lambda: "pod restarted (trigger)" in restart_log(lab)[seen:], 10)
    assert elapsed < 30


def test_broken_edit_keeps_the_pod_and_tells_the_tenant(lab, pod_file):
    pid = main_pid(lab, NAME)
    version = served_version(lab, NAME)
    # Valid YAML that the policy refuses.
    write_pod_file(lab, pod_file.replace("spec:\n", "spec:\n  hostNetwork: true\n", 1))
    seen = len(restart_log(lab))  # only what this test causes counts
    pull_trigger(lab)
    assert wait_for(lambda: trigger_gone(lab), 30)
    assert wait_for(lambda: "spec.hostNetwork" in restart_log(lab)[seen:], 10), restart_log(lab)
    assert "NOT restarted" in restart_log(lab)[seen:]
    assert main_pid(lab, NAME) == pid
    assert served_version(lab, NAME) == version
    # The tenant can read the log; other tenants cannot.
    assert lab.run(tenant(NAME, f"cat {LOGS}/pod_restart.log")).rc == 0
    assert lab.run(tenant(OTHER, f"cat {LOGS}/pod_restart.log")).rc != 0


def test_planted_symlinks_are_neither_followed_nor_written(lab, pod_file):
    # The trigger as a symlink to a root file, the restart log as a symlink to another.
    before = lab.check_output("sha256sum /etc/passwd /etc/hostname")
    log = f"{LOGS}/pod_restart.log"
    res = lab.run(
        tenant(NAME, f"mv {log} {log}.keep; ln -s /etc/hostname {log}; ln -s /etc/passwd {TRIGGER}")
    )
    assert res.rc == 0, res.stderr
    try:
        assert wait_for(lambda: trigger_gone(lab), 30)
        assert lab.file("/etc/passwd").exists
        assert lab.check_output("sha256sum /etc/passwd /etc/hostname") == before
        assert lab.file(log).is_symlink
    finally:
        lab.run(tenant(NAME, f"rm -f {log}; mv {log}.keep {log}"))
    assert wait_for(lambda: served_version(lab, NAME) in ("1", "2"), 30)


# ---------------------------------------------------------------------------------------------
# Image updates
# ---------------------------------------------------------------------------------------------
def push(lab, source_tag, target):
    """Copy a lab image to another tag of the lab registry (root podman in the lab host,
    which the host role installed; root's store starts empty: labctl pushes the lab
    images without podman, so pull the source first)."""
    password = (
        Path(f"/var/lib/webhosting-pods-lab/hosts/{lab.backend.name}/registry-password")
        .read_text()
        .strip()
    )
    creds = f"--creds labuser:{shlex.quote(password)}"
    res = lab.run(
        f"podman pull --quiet {creds} {REGISTRY}/lab/httpd:{source_tag} && "
        f"podman tag {REGISTRY}/lab/httpd:{source_tag} {target} && "
        f"podman push --quiet {creds} {target}"
    )
    assert res.rc == 0, res.stderr


def start_update(lab, name):
    res = lab.run(user_systemctl(name, "start", "webhosting-pod-update.service"))
    assert res.rc == 0, res.stderr


def test_update_restarts_only_the_pod_whose_image_changed(lab, pod_file):
    target = f"{UPDATE_REPO}:live"
    push(lab, "1", target)
    write_pod_file(lab, with_image(pod_file, target))
    restarts = restart_log(lab).count("pod restarted (trigger)")
    pull_trigger(lab)
    # Until podops has restarted the pod: the old pod serves version 1 too, so "serves 1"
    # alone can be true before the restart (and its main PID then changes under the test).
    assert wait_for(
        lambda: (
            restart_log(lab).count("pod restarted (trigger)") > restarts
            and served_version(lab, NAME) == "1"
        ),
        60,
    ), (served_version(lab, NAME), restart_log(lab)[-1000:])

    # Unchanged image: nothing restarts.
    pid, other_pid = main_pid(lab, NAME), main_pid(lab, OTHER)
    start = time.monotonic()
    start_update(lab, NAME)
    assert time.monotonic() - start < 15
    assert main_pid(lab, NAME) == pid
    assert "images up to date" in lab.file(f"{LOGS}/pod_update.log").content_string

    # A new image behind the same tag: this pod restarts with it, the other pod does not.
    push(lab, "2", target)
    start_update(lab, NAME)
    assert wait_for(lambda: served_version(lab, NAME) == "2", 30)
    assert main_pid(lab, NAME) != pid
    assert main_pid(lab, OTHER) == other_pid
    update_log = lab.file(f"{LOGS}/pod_update.log").content_string
    assert "new image" in update_log
    # the image version 1 is no container's any more: removed after the restart
    assert "removed 1 unused image" in update_log, update_log[-1000:]

    # And once more: up to date now.
    pid = main_pid(lab, NAME)
    start_update(lab, NAME)
    assert main_pid(lab, NAME) == pid


# ---------------------------------------------------------------------------------------------
# Logs and cron jobs
# ---------------------------------------------------------------------------------------------
def container_says(lab, text):
    """Write a line to the stdout of alpha's web container (its PID 1's stdout)."""
    res = lab.run(tenant(NAME, f"podman exec {NAME}-web /bin/sh -c 'echo {text} > /proc/1/fd/1'"))
    assert res.rc == 0, res.stderr


def test_container_output_lands_in_the_log_and_survives_rotation(lab):
    log = f"{LOGS}/{NAME}-{NAME}.log"
    mark = f"before-rotation-{time.time_ns()}"
    container_says(lab, mark)
    assert wait_for(lambda: mark in lab.file(log).content_string, 10)
    assert lab.run(tenant(NAME, f"cat {log}")).rc == 0

    res = lab.run("logrotate -f /etc/logrotate.d/webhosting-pods")
    assert res.rc == 0, res.stderr
    assert mark in lab.file(f"{log}.1").content_string
    after = f"after-rotation-{time.time_ns()}"
    container_says(lab, after)
    assert wait_for(lambda: after in lab.file(log).content_string, 10)
    content = lab.file(log).content
    assert mark.encode() not in content
    # copytruncate and conmon's O_APPEND: no hole of NUL bytes before the new lines.
    assert b"\0" not in content


def test_cron_job_output_lands_in_the_log(lab):
    res = lab.run(user_systemctl(NAME, "start", "webhosting-cron@hello.service"))
    assert res.rc == 0, res.stderr
    log = lab.file(f"{LOGS}/{NAME}-cron-hello.log").content_string
    # The argv reached the container untouched: no shell expanded $HOME or split at ';'.
    assert "hello from cron; $HOME stays literal" in log
    assert log.rstrip().endswith("cron job hello: exit status 0")


# ---------------------------------------------------------------------------------------------
# Removal (last: it removes gamma and re-creates it)
# ---------------------------------------------------------------------------------------------
def playbook(lab, tmp_path, state, check=False, extra_vars=None, fails=False):
    hostings = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
    for h in hostings:
        if h["name"] == REMOVED:
            h["state"] = state
    extra = tmp_path / f"hostings-{state}.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "webhosting_hostings": hostings,
                "webhosting_hosting_limit": [REMOVED],
                **(extra_vars or {}),
            }
        )
    )
    env = dict(os.environ)
    env["PATH"] = f"{PROJECT}/lab/bin:{PROJECT}/.venv/bin:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(PROJECT / "ansible.cfg")
    env["MOLECULE_PROJECT_DIRECTORY"] = str(PROJECT)
    env["ANSIBLE_FORCE_COLOR"] = "false"
    argv = [
        "ansible-playbook",
        "-i",
        str(INVENTORY),
        str(PROJECT / "site.yml"),
        "--limit",
        lab.backend.name,
        "-e",
        f"@{extra}",
    ]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert (proc.returncode != 0) is fails, proc.stdout[-4000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    recap = [line for line in lines if line.startswith(lab.backend.name + " ")]
    # The tasks that changed something, for the assertion messages.
    tasks = [line for line in lines if line.startswith("TASK [")]
    changed = [
        next((t for t in reversed(tasks) if lines.index(t) < i), "?")
        for i, line in enumerate(lines)
        if line.startswith("changed:")
    ]
    return proc.stdout, recap[-1] + " " + " | ".join(changed)


def test_removal_locks_the_account_first_and_a_refused_removal_keeps_everything(
    lab, tmp_path, sftp, refused_source
):
    """The removal expires the account before it measures and archives: no login over SFTP
    from then on (keys included). Here the archive may not exceed 1 byte, so the removal
    is refused after the lock: the tenant stays locked out, nothing is deleted; the next
    test removes gamma for real."""
    root = f"/srv/hostings/{REMOVED}"
    assert lab.file(root).is_directory, "gamma must exist before the removal tests"
    assert sftp(lab, REMOVED, 3, ["ls /"]).rc == 0  # the tenant logs in before
    out, _recap = playbook(
        lab, tmp_path, "absent", extra_vars={"hosting_archive_max_bytes": 1}, fails=True
    )
    assert f"hosting {REMOVED} is NOT removed" in out, out[-3000:]
    # the key still authenticates; PAM's account check then refuses the expired account
    # and sshd closes the connection (its log says why)
    since = lab.check_output("date '+%Y-%m-%d %H:%M:%S'").strip()
    res = sftp(lab, REMOVED, 3, ["ls /"], source=refused_source())
    assert res.rc != 0, res.stdout
    assert "Connection closed" in res.stderr or "Permission denied" in res.stderr, res.stderr
    # (sshd on Debian 12, sshd-session on 13: the whole journal of these seconds)
    journal = lab.run(f"journalctl --no-pager --since '{since}'").stdout
    assert (
        f"account {REMOVED} has expired" in journal
        or f"Access denied for user {REMOVED} by PAM account configuration" in journal
    ), journal[-3000:]
    expire = lab.check_output(f"getent shadow {REMOVED}").strip().split(":")[7]
    assert expire == "1", expire
    assert lab.file(root).is_directory and lab.user(REMOVED).exists


def test_removal_archives_then_leaves_nothing_behind(lab, tmp_path, sftp):
    h = HOSTINGS[REMOVED]
    root = f"/srv/hostings/{REMOVED}"
    assert lab.file(root).is_directory, "gamma must exist before the removal test"
    start, count = next(
        map(int, line.split(":")[1:])
        for line in lab.file("/etc/subuid").content_string.splitlines()
        if line.startswith(REMOVED + ":")
    )
    mark = f"tenant data {time.time_ns()}"
    assert lab.run(tenant(REMOVED, f"echo '{mark}' > {root}/data/keep.txt")).rc == 0
    # A sparse file of 2 TB (a few bytes stored) must not make the archive huge or slow.
    sparse = f"{root}/data/sparse.img"
    assert lab.run(tenant(REMOVED, f"truncate -s 2T {sparse} && echo end >> {sparse}")).rc == 0
    archives_before = set(
        lab.check_output("ls /var/backups/webhosting-pods 2>/dev/null || true").split()
    )

    out, recap = playbook(lab, tmp_path, "absent")
    archives = set(lab.check_output("ls /var/backups/webhosting-pods").split()) - archives_before
    assert len(archives) == 1, out[-3000:]
    archive = f"/var/backups/webhosting-pods/{archives.pop()}"
    f = lab.file(archive)
    assert f.user == "root" and f.mode == 0o600
    listing = lab.check_output(f"tar --list --gzip --file {archive}").split()
    for path in (
        "data/keep.txt",
        "data/sparse.img",
        "www/",
        "logs/",
        f"private/container-config/pod-{REMOVED}.yaml",
    ):
        assert f"{REMOVED}/{path}" in listing, path
    assert f.size < 10 * 1024 * 1024, f.size
    assert mark in lab.check_output(
        f"tar --extract --gzip --to-stdout --file {archive} {REMOVED}/data/keep.txt"
    )

    # Nothing of the hosting is left.
    assert not lab.user(REMOVED).exists
    assert not lab.group(REMOVED).exists
    for path in (
        root,
        f"/var/lib/webhosting-pods/users/{REMOVED}",
        f"/var/lib/webhosting-pods/storage/{REMOVED}",
        f"/var/lib/webhosting-pods/state/{REMOVED}",
        f"/etc/webhosting-pods/hostings/{REMOVED}",
        f"/var/lib/systemd/linger/{REMOVED}",
    ):
        assert not lab.file(path).exists, path
    for ids in ("/etc/subuid", "/etc/subgid"):
        assert not any(
            line.startswith(REMOVED + ":") for line in lab.file(ids).content_string.splitlines()
        )
    uids = [int(u) for u in lab.check_output("ps -eo uid=").split()]
    assert not [u for u in uids if u == h["uid"] or start <= u < start + count]
    assert lab.run(f"systemctl is-active user@{h['uid']}.service").stdout.strip() != "active"
    assert (
        lab.run(f"systemctl is-enabled webhosting-trigger@{REMOVED}.path").stdout.strip()
        != "enabled"
    )
    assert (
        "/var/lib/webhosting-pods/storage/" + REMOVED not in lab.file("/proc/mounts").content_string
    )
    # its SFTP login is gone with it: no member of the SFTP group, no key watch, and the
    # sshd drop-in names no hosting (there is nothing per hosting to leave behind)
    members = lab.check_output("getent group webhosting-sftp").strip().split(":")[3].split(",")
    assert REMOVED not in members
    assert (
        lab.run(f"systemctl is-enabled webhosting-keys@{REMOVED}.path").stdout.strip() != "enabled"
    )
    assert REMOVED not in lab.file("/etc/ssh/sshd_config.d/50-webhosting-pods.conf").content_string

    # Again: nothing to do, no second archive; a dry run changes nothing either.
    _, recap = playbook(lab, tmp_path, "absent")
    assert "changed=0" in recap, recap
    _, recap = playbook(lab, tmp_path, "absent", check=True)
    assert "changed=0" in recap, recap
    assert set(lab.check_output("ls /var/backups/webhosting-pods").split()) - archives_before == {
        Path(archive).name
    }

    # Other hostings never noticed.
    for name in ("alpha", "beta"):
        assert served_version(lab, name) in ("1", "2")

    # Re-create gamma for the next run of the suite: its tenant logs in again.
    playbook(lab, tmp_path, "present")
    assert (
        lab.run(user_systemctl(REMOVED, "is-active", "webhosting-pod.service")).stdout.strip()
        == "active"
    )
    assert sftp(lab, REMOVED, 3, ["ls /"]).rc == 0
