"""Pods that stay up, and say so when they don't, checked from the outside on both lab hosts
(podman 4.3 and 5.4): a container killed from outside or stopped by its tenant is running
again within seconds and the tenant's logs/pod_start.log says so; a container that fails at
every start backs off and then leaves the hosting's unit `failed` (not `active`), with a
bounded number of log lines; the tenant's own restart trigger brings it back.

beta (web + db) is the victim of the first two; alpha gets a crash-looping container for the
third and is restored at the end: both serve as before.
"""

import json
import re
import shlex
import time

import yaml

UNIT = "webhosting-pod.service"
POD = "/private/container-config/pod-alpha.yaml"
WORK = "/root/crash-work"
UIDS = {"alpha": 10001, "beta": 10002}


def tenant(name, command):
    """A shell line run as the hosting user (its podman, its own uid)."""
    env = [
        f"USER={name}",
        f"XDG_RUNTIME_DIR=/run/user/{UIDS[name]}",
        f"XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{name}/config",
        f"HOME=/var/lib/webhosting-pods/users/{name}",
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
    ]
    return (
        f"cd / && setpriv --reuid={UIDS[name]} --regid={UIDS[name]} --init-groups "
        f"env {' '.join(env)} /bin/sh -c {shlex.quote(command)}"
    )


def unit(lab, name, prop):
    cmd = f"systemctl --user --machine={name}@ show -p {prop} --value {UNIT}"
    return lab.check_output(cmd).strip()


def container_state(lab, name, container):
    res = lab.run(
        tenant(
            name, f"podman inspect --format '{{{{.State.Status}}}} {{{{.State.Pid}}}}' {container}"
        )
    )
    status, pid = res.stdout.split() if res.rc == 0 else ("absent", "0")
    return status, int(pid)


def start_log(lab, name):
    return lab.run(f"cat /srv/hostings/{name}/logs/pod_start.log").stdout


def serves(lab, name):
    res = lab.run(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 3 https://{name}.example.test/"
    )
    return res.stdout.strip() == "200"


def back_after(lab, wait_until, name, container, old_pid, log_before):
    """The container runs again with a new pid, and the tenant's log has one new line."""
    started = time.monotonic()
    wait_until(
        f"{container} running again",
        lambda: (lambda s: s[0] == "running" and s[1] not in (0, old_pid))(
            container_state(lab, name, container)
        ),
        30,
        0.2,
    )
    elapsed = time.monotonic() - started
    new = start_log(lab, name)[len(log_before) :]
    return elapsed, new


def test_a_killed_container_is_back_within_seconds(lab, wait_until):
    main_pid = unit(lab, "beta", "MainPID")
    status, pid = container_state(lab, "beta", "beta-db")
    assert status == "running"
    before = start_log(lab, "beta")
    lab.check_output(f"kill -KILL {pid}")  # a crash: the db's process dies from outside
    elapsed, new = back_after(lab, wait_until, "beta", "beta-db", pid, before)
    assert elapsed < 10, elapsed
    assert re.search(r"container beta-db exited with code 137; starting it again in 1 s", new), new
    assert len(new.splitlines()) == 1, new
    assert unit(lab, "beta", "ActiveState") == "active"
    assert unit(lab, "beta", "MainPID") == main_pid  # the pod was not restarted as a whole
    assert serves(lab, "beta")


def test_a_container_stopped_by_its_tenant_is_started_again(lab, wait_until):
    status, pid = container_state(lab, "beta", "beta-db")
    assert status == "running"
    before = start_log(lab, "beta")
    lab.check_output(tenant("beta", "podman stop --time 1 beta-db"))
    elapsed, new = back_after(lab, wait_until, "beta", "beta-db", pid, before)
    assert elapsed < 15, elapsed
    assert "container beta-db exited with code" in new
    assert unit(lab, "beta", "ActiveState") == "active"


def test_a_restart_stops_the_containers_gracefully(lab, wait_until):
    """A restart of the pod (here the admin's) gives each container its stop signal and
    time: beta's db traps SIGTERM and notes it, as a database shuts down cleanly. podman
    4.3's kube down alone would SIGKILL it."""
    log = "/srv/hostings/beta/data/db.log"
    before = lab.file(log).content_string.count("stopped on SIGTERM")
    lab.check_output(f"systemctl --user --machine=beta@ restart {UNIT}")
    assert lab.file(log).content_string.count("stopped on SIGTERM") == before + 1
    wait_until("beta serving again", lambda: serves(lab, "beta"), 60, 1)
    assert unit(lab, "beta", "ActiveState") == "active"


def test_status_at_a_glance_for_the_admin_and_the_tenant(lab, sftp):
    res = lab.run("podops status --json")
    assert res.rc == 0, res.stdout + res.stderr
    seen = {h["hosting"]: h for h in json.loads(res.stdout)["hostings"]}
    assert set(seen) >= {"alpha", "beta"}
    beta = seen["beta"]
    assert beta["unit"]["ActiveState"] == "active"
    assert {n: c["state"] for n, c in beta["pod"]["containers"].items()} == {
        "beta-web": "running",
        "beta-db": "running",
    }
    assert beta["certificate_not_after"] > "2026"  # the certificate nginx serves
    assert beta["disk_bytes"] > 0
    table = lab.check_output("podops status --no-disk")
    assert table.splitlines()[0].startswith("HOSTING") and "beta" in table
    # the tenant's own view, over SFTP
    lab.check_output(f"mkdir -p {WORK} && rm -f {WORK}/pod_status.json")
    assert sftp(lab, "beta", 2, [f"get /logs/pod_status.json {WORK}/pod_status.json"]).rc == 0
    mine = json.loads(lab.file(f"{WORK}/pod_status.json").content_string)
    assert mine["state"] == "running" and set(mine["containers"]) == {"beta-web", "beta-db"}


def _upload(lab, sftp, wait_until, text):
    lab.check_output(f"mkdir -p {WORK}")
    lab.check_output(
        f"printf %s {shlex.quote(text)} > {WORK}/pod.yaml && chmod 0644 {WORK}/pod.yaml"
    )
    lab.check_output(f"touch {WORK}/empty && chmod 0644 {WORK}/empty")
    lab.run("rm -f /srv/hostings/alpha/logs/pod_restart.log")
    res = sftp(
        lab,
        "alpha",
        1,
        [
            f"put {WORK}/pod.yaml {POD}.part",
            f"rename {POD}.part {POD}",
            f"put {WORK}/empty /scripts/pod_restart/pod_restart.run",
        ],
    )
    assert res.rc == 0, res.stderr
    wait_until(
        "the tenant's restart",
        lambda: (
            "pod restarted (trigger)"
            in lab.run("cat /srv/hostings/alpha/logs/pod_restart.log").stdout
        ),
        120,
        1,
    )


def test_a_crash_loop_fails_the_unit_and_the_trigger_brings_it_back(lab, sftp, wait_until):
    original = lab.file("/srv/hostings/alpha" + POD).content_string
    spec = yaml.safe_load(original)
    web = spec["spec"]["containers"][0]
    token = "crashing-%d" % time.time_ns()
    crash = {
        "name": "crash",
        "image": web["image"],
        "command": ["/bin/sh", "-c", f"echo {token}; exit 3"],
    }
    spec["spec"]["containers"].append(crash)
    before = start_log(lab, "alpha")
    try:
        _upload(lab, sftp, wait_until, yaml.safe_dump(spec, sort_keys=False))
        started = time.monotonic()
        wait_until(
            "alpha's unit failed", lambda: unit(lab, "alpha", "ActiveState") == "failed", 90, 1
        )
        elapsed = time.monotonic() - started
        assert unit(lab, "alpha", "Result") == "exit-code"
        assert unit(lab, "alpha", "ExecMainStatus") == "4"
        new = start_log(lab, "alpha")[len(before) :]
        crash_lines = [line for line in new.splitlines() if "alpha-crash" in line]
        # 4 restarts after 1, 2, 4, 8 s, then the give-up: 5 lines, not hundreds
        assert len(crash_lines) == 5, new
        assert "exited with code 3, 5 times in 300 s" in crash_lines[-1]
        assert 14 <= elapsed < 60, elapsed
        assert not serves(lab, "alpha")  # the pod is down, nginx answers 502
        # the admin sees it at a glance (and monitoring by the exit status)
        res = lab.run("podops status --json --no-disk")
        assert res.rc == 1, res.stdout
        seen = {h["hosting"]: h for h in json.loads(res.stdout)["hostings"]}
        assert seen["alpha"]["unit"]["ActiveState"] == "failed"
        assert seen["alpha"]["pod"]["state"] == "failed"
        assert seen["alpha"]["pod"]["containers"]["alpha-crash"]["restarts"] == 4
        assert seen["beta"]["unit"]["ActiveState"] == "active"
        # the container's own output was written 5 times, not hundreds
        out = lab.run(f"grep -c {token} /srv/hostings/alpha/logs/alpha-alpha.log")
        assert 5 <= int(out.stdout.strip() or 0) <= 12, out.stdout
    finally:
        _upload(lab, sftp, wait_until, original)
    wait_until("alpha active again", lambda: unit(lab, "alpha", "ActiveState") == "active", 60, 1)
    wait_until("alpha serves again", lambda: serves(lab, "alpha"), 60, 1)


def _alpha_tree_processes(lab):
    """Processes of alpha's user and of its containers (its subordinate uids)."""
    lo = hi = None
    for line in lab.file("/etc/subuid").content_string.splitlines():
        user, start, count = line.split(":")
        if user == "alpha":
            lo, hi = int(start), int(start) + int(count)
    out = lab.check_output("ps -eLo uid=")  # threads count as tasks too
    uids = [int(u) for u in out.split()]
    return sum(1 for u in uids if u == UIDS["alpha"] or lo <= u < hi)


def test_a_fork_bomb_and_a_log_flood_in_one_hosting_leave_the_other_serving(lab, sftp, wait_until):
    # the ceilings are root's: the slice and the user manager of alpha (limits.tasks_max 400
    # in the molecule inventory), out of the tenant's reach
    assert "TasksMax=400" in lab.check_output("systemctl show -p TasksMax user-10001.slice")
    assert "MemoryMax=1073741824" in lab.check_output(
        "systemctl show -p MemoryMax user-10001.slice"
    )
    assert "CPUWeight=100" in lab.check_output("systemctl show -p CPUWeight user-10001.slice")
    pid = unit(lab, "alpha", "MainPID")
    limits = lab.check_output(f"grep 'Max processes' /proc/{pid}/limits").split()
    assert limits[2:4] == ["400", "400"], limits

    original = lab.file("/srv/hostings/alpha" + POD).content_string
    spec = yaml.safe_load(original)
    line = "flood " + "x" * 200
    spec["spec"]["containers"].append(
        {
            "name": "chatty",
            "image": spec["spec"]["containers"][0]["image"],
            "command": ["/bin/sh", "-c", f"while :; do echo {line}; done"],
        }
    )
    log = "/srv/hostings/alpha/logs/alpha-alpha.log"
    before = start_log(lab, "alpha")
    try:
        _upload(lab, sftp, wait_until, yaml.safe_dump(spec, sort_keys=False))
        # the flood: alpha's container log stays near its bound (container_log_max 1Mi)
        wait_until(
            "the log bound to act",
            lambda: "beyond container_log_max" in start_log(lab, "alpha")[len(before) :],
            60,
            1,
        )
        sizes = []
        for _ in range(5):
            sizes.append(int(lab.check_output(f"stat -c %s {log}")))
            assert serves(lab, "beta")
            time.sleep(1)
        assert max(sizes) < 64 * 1024 * 1024, sizes
        assert max(sizes[1:]) < 32 * 1024 * 1024, sizes  # 0.1 s of flood at most, measured
        # the flood goes on and the bound keeps acting, but the tenant's log is told once
        # (then once a minute), not at every emptying
        told = start_log(lab, "alpha")[len(before) :].count("container_log_max")
        assert told == 1, start_log(lab, "alpha")[len(before) :]

        # the fork bomb, from inside alpha's container: it stops at the ceiling
        bomb = "i=0; while [ $i -lt 5000 ]; do sleep 8 & i=$((i+1)); done 2>/dev/null; echo $i"
        started = time.monotonic()
        res = lab.run(
            tenant("alpha", f"timeout 60 podman exec alpha-web sh -c {shlex.quote(bomb)}")
        )
        # the bomb itself, timed alone (the checks below take their own seconds)
        bomb_s = time.monotonic() - started
        during = _alpha_tree_processes(lab)
        assert during <= 400, during
        assert during > 300, during  # it did hit the ceiling, not something else
        assert "can't fork" in res.stderr or res.rc != 0 or int(res.stdout.split()[-1]) < 5000
        for _ in range(5):
            assert serves(lab, "beta")  # the other hosting serves through it all
        assert bomb_s < 8, f"the bomb outlived its own sleeps ({bomb_s:.1f} s)"
        wait_until("the bomb's processes to end", lambda: _alpha_tree_processes(lab) < 100, 60, 1)
    finally:
        wait_until("alpha can fork again", lambda: _alpha_tree_processes(lab) < 100, 60, 1)
        _upload(lab, sftp, wait_until, original)
    wait_until("alpha serves again", lambda: serves(lab, "alpha"), 60, 1)


def test_an_unhealthy_container_is_restarted_by_its_liveness_probe(lab, sftp, wait_until):
    # httpGet runs from outside the container (the lab image has no curl): busybox httpd
    # serves the tenant's www/ at /site/; the tenant deletes the health file over SFTP
    original = lab.file("/srv/hostings/alpha" + POD).content_string
    spec = yaml.safe_load(original)
    spec["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"path": "/site/healthz", "port": 8080},
        "periodSeconds": 5,
        "failureThreshold": 2,
    }
    lab.check_output(f"mkdir -p {WORK} && echo ok > {WORK}/healthz && chmod 0644 {WORK}/healthz")
    assert sftp(lab, "alpha", 1, [f"put {WORK}/healthz /www/healthz"]).rc == 0
    try:
        _upload(lab, sftp, wait_until, yaml.safe_dump(spec, sort_keys=False))
        wait_until("alpha serves", lambda: serves(lab, "alpha"), 60, 1)
        _status, pid = container_state(lab, "alpha", "alpha-web")
        before = start_log(lab, "alpha")
        time.sleep(12)  # two periods and more: a healthy container is left alone
        assert container_state(lab, "alpha", "alpha-web") == ("running", pid)
        assert "probe" not in start_log(lab, "alpha")[len(before) :]

        assert sftp(lab, "alpha", 1, ["rm /www/healthz"]).rc == 0  # now it answers 404
        started = time.monotonic()
        wait_until(
            "the liveness probe to act",
            lambda: "failed its liveness probe" in start_log(lab, "alpha")[len(before) :],
            60,
            1,
        )
        elapsed = time.monotonic() - started
        assert elapsed < 25, elapsed  # 2 failures, 5 s apart
        new = start_log(lab, "alpha")[len(before) :]
        assert (
            "container alpha-web failed its liveness probe (httpGet HTTP 8080/site/healthz)"
            " 2 times in a row: HTTP 404; it is stopped and started again" in new
        ), new
        assert sftp(lab, "alpha", 1, [f"put {WORK}/healthz /www/healthz"]).rc == 0
        wait_until(
            "alpha-web running again",
            lambda: (lambda s: s[0] == "running" and s[1] not in (0, pid))(
                container_state(lab, "alpha", "alpha-web")
            ),
            30,
            0.5,
        )
        assert unit(lab, "alpha", "ActiveState") == "active"
    finally:
        _upload(lab, sftp, wait_until, original)
        sftp(lab, "alpha", 1, ["-rm /www/healthz"])
    wait_until("alpha serves again", lambda: serves(lab, "alpha"), 60, 1)
