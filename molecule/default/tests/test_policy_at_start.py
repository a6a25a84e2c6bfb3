"""The policy holds at every start, checked from the outside on alpha: the tenant works over
SFTP (OpenSSH's sftp client, tenant key 1), the admin restarts the pod unit (as a reboot or
an image update would) or runs site.yml with a tightened policy. A pod whose spec no longer
validates never starts from an older rendered spec; its tenant reads why in
logs/pod_start.log. Everything is restored at the end: alpha serves version 1.
"""

import json
import shlex
import time
from pathlib import Path

import pytest
import yaml

NAME = "alpha"
ROOT = f"/srv/hostings/{NAME}"
POD = f"/private/container-config/pod-{NAME}.yaml"
UNIT = "webhosting-pod.service"
WORK = "/root/policy-work"


def user_systemctl(*args):
    return " ".join(["systemctl", "--user", f"--machine={NAME}@", *map(shlex.quote, args)])


def active(lab):
    return lab.run(user_systemctl("is-active", UNIT)).stdout.strip()


def version(lab):
    res = lab.run(f"curl -sS --max-time 3 https://{NAME}.example.test/version")
    return res.stdout.strip() if res.rc == 0 else None


def local_file(lab, name, text):
    path = f"{WORK}/{name}"
    lab.check_output(
        f"mkdir -p {WORK} && printf %s {shlex.quote(text)} > {path} && chmod 0644 {path}"
    )
    return path


def restart_by_tenant(lab, sftp, wait_until, pod_text):
    """Upload the pod file and create the restart trigger; wait for the restart's log line."""
    lab.run(f"rm -f {ROOT}/logs/pod_restart.log")
    res = sftp(
        lab,
        NAME,
        1,
        [
            f"put {local_file(lab, 'pod.yaml', pod_text)} {POD}.part",
            f"rename {POD}.part {POD}",
            f"put {local_file(lab, 'empty', '')} /scripts/pod_restart/pod_restart.run",
        ],
    )
    assert res.rc == 0, res.stderr
    wait_until(
        "the tenant's restart",
        lambda: "pod restarted (trigger)" in lab.run(f"cat {ROOT}/logs/pod_restart.log").stdout,
        120,
        1,
    )


def mounts_of_containers(lab, container_pids):
    """Each container process's mountinfo (what it really sees), by pid."""
    return {
        pid: lab.run(f"cat /proc/{pid}/mountinfo").stdout
        for pid, _uid, _comm in container_pids(lab, NAME)
    }


def test_a_swapped_symlink_never_reaches_a_container(lab, sftp, wait_until, container_pids):
    original = lab.file(ROOT + POD).content_string
    spec = yaml.safe_load(original)
    spec["spec"]["volumes"].append(
        {"name": "swap", "hostPath": {"path": "/data/swap", "type": "Directory"}}
    )
    web = spec["spec"]["containers"][0]
    web["volumeMounts"].append({"name": "swap", "mountPath": "/swap"})
    assert sftp(lab, NAME, 1, ["-mkdir /data/swap"]).rc == 0
    restart_by_tenant(lab, sftp, wait_until, yaml.safe_dump(spec, sort_keys=False))
    wait_until("alpha active", lambda: active(lab) == "active", 60, 1)
    lab.run(f"rm -f {ROOT}/logs/pod_start.log")
    try:
        # The tenant swaps the mounted folder for a link to the host's root...
        res = sftp(lab, NAME, 1, ["rename /data/swap /data/swap.old", "symlink / /data/swap"])
        assert res.rc == 0, res.stderr
        assert lab.file(f"{ROOT}/data/swap").is_symlink
        # ...and waits for a start they do not control (a reboot, an image update).
        lab.run(user_systemctl("restart", UNIT))
        wait_until("alpha refused", lambda: active(lab) in ("failed", "inactive"), 60, 1)
        log = lab.file(f"{ROOT}/logs/pod_start.log").content_string
        assert "the pod was NOT started: no valid pod file" in log
        assert "data/swap" in log
        # no container runs, so none sees the host's root through the link
        for pid, info in mounts_of_containers(lab, container_pids).items():
            assert " /swap " not in info, (pid, info)
    finally:
        sftp(lab, NAME, 1, ["-rm /data/swap", "-rename /data/swap.old /data/swap"])
        restart_by_tenant(lab, sftp, wait_until, original)
        sftp(lab, NAME, 1, ["-rmdir /data/swap"])
    wait_until("alpha serves again", lambda: version(lab) == "1", 90, 1)


RACER = """cd /srv/hostings/alpha/data || exit 1
n=0
while [ ! -e /run/race.stop ]; do
  mv race race.real && ln -s / race && rm race && mv race.real race
  n=$((n + 1))
done
echo $n > /tmp/race.count
"""


def test_a_racing_swap_never_reaches_a_container(lab, sftp, wait_until, container_pids):
    """A tenant loop swaps a mounted folder and a link to / as fast as it can while the pod
    restarts again and again: every start either refuses (the check saw the link) or mounts
    the very folder it checked (pinned in podman's namespace), never the host's root."""
    original = lab.file(ROOT + POD).content_string
    spec = yaml.safe_load(original)
    spec["spec"]["volumes"].append(
        {"name": "race", "hostPath": {"path": "/data/race", "type": "Directory"}}
    )
    spec["spec"]["containers"][0]["volumeMounts"].append({"name": "race", "mountPath": "/race"})
    res = sftp(
        lab,
        NAME,
        1,
        ["-mkdir /data/race", f"put {local_file(lab, 'marker', 'pinned')} /data/race/marker"],
    )
    assert res.rc == 0, res.stderr
    restart_by_tenant(lab, sftp, wait_until, yaml.safe_dump(spec, sort_keys=False))
    wait_until("alpha active", lambda: active(lab) == "active", 60, 1)
    racer = "/run/webhosting-racer.sh"  # readable by the hosting user
    lab.check_output(f"printf %s {shlex.quote(RACER)} > {racer} && chmod 0644 {racer}")
    lab.run("rm -f /run/race.stop /tmp/race.count")
    # as the hosting user, which is what the tenant is (faster than an SFTP client)
    lab.check_output(f"setsid runuser -u {NAME} -- /bin/sh {racer} >/dev/null 2>&1 &")
    outcomes = {"served": 0, "refused": 0, "checked": 0}
    try:
        for _ in range(12):
            lab.run(user_systemctl("reset-failed", UNIT))
            started = lab.run(user_systemctl("restart", UNIT)).rc == 0
            outcomes["served" if started else "refused"] += 1
            mounted = False
            for pid, _uid, _comm in container_pids(lab, NAME):
                info = lab.run(f"cat /proc/{pid}/mountinfo").stdout
                race = [line for line in info.splitlines() if line.split()[4:5] == ["/race"]]
                if not race:
                    continue
                # the mount's root is the folder below the hosting, whatever its name now
                root = race[0].split()[3]
                assert root.endswith(("/data/race", "/data/race.real")), (pid, race)
                listing = lab.run(f"ls -A /proc/{pid}/root/race")
                if listing.rc != 0 and not lab.file(f"/proc/{pid}").exists:
                    continue  # the process ended since it was listed
                seen = listing.stdout.split()
                assert seen == ["marker"], (pid, seen)
                mounted = True
            # a start that succeeded runs the web container with its /race mount
            assert mounted or not started, "no container has /race after a served start"
            outcomes["checked"] += mounted
    finally:
        lab.run("touch /run/race.stop")
        wait_until(
            "the racer stops",
            lambda: lab.run("pgrep -f [r]acer.sh").rc != 0,
            30,
            1,
        )
        swaps = lab.run("cat /tmp/race.count").stdout.strip()
        lab.run(f"rm -f /run/race.stop /tmp/race.count {racer}")
        if lab.file(f"{ROOT}/data/race").is_symlink:
            lab.run(f"rm {ROOT}/data/race")
        if lab.file(f"{ROOT}/data/race.real").exists:
            lab.run(f"mv {ROOT}/data/race.real {ROOT}/data/race")
        lab.run(user_systemctl("reset-failed", UNIT))
        restart_by_tenant(lab, sftp, wait_until, original)
        sftp(lab, NAME, 1, ["-rm /data/race/marker", "-rmdir /data/race"])
    wait_until("alpha serves again", lambda: version(lab) == "1", 90, 1)
    print("racing starts on %s: %s, %s swaps" % (lab.backend.name, outcomes, swaps))
    # the tenant's loop really raced the starts, and at least one start was served and its
    # mount checked (if every start were refused, the mount check above never ran)
    assert int(swaps or 0) > 100, swaps
    assert outcomes["checked"] >= 1, outcomes


def test_a_broken_edit_starts_the_last_valid_pod(lab, sftp, wait_until):
    """A start after the tenant broke the pod file runs the last valid version, rendered again."""
    original = lab.file(ROOT + POD).content_string
    broken = original.replace("spec:\n", "spec:\n  hostNetwork: true\n", 1)
    assert broken != original
    lab.run(f"rm -f {ROOT}/logs/pod_start.log")
    res = sftp(
        lab,
        NAME,
        1,
        [f"put {local_file(lab, 'broken.yaml', broken)} {POD}.part", f"rename {POD}.part {POD}"],
    )
    assert res.rc == 0, res.stderr
    try:
        lab.run(user_systemctl("restart", UNIT))
        wait_until("alpha serves", lambda: version(lab) == "1", 90, 1)
        log = lab.file(f"{ROOT}/logs/pod_start.log").content_string
        assert "started with the last valid version" in log
        assert "spec.hostNetwork" in log
    finally:
        sftp(lab, NAME, 1, [f"put {local_file(lab, 'good.yaml', original)} {POD}"])
    assert lab.file(ROOT + POD).content_string == original


@pytest.fixture(scope="session")
def tightened(all_labs, run_site, wait_until):
    """The admin allows only a registry path alpha's images are not under, runs site.yml on
    every lab host at once, then goes back to the inventory and runs it again."""
    group_vars = yaml.safe_load((lab_inventory_dir() / "group_vars" / "pod_hosts.yml").read_text())
    hostings = group_vars["webhosting_hostings"]
    alpha = next(h for h in hostings if h["name"] == NAME)
    alpha.setdefault("policy", {})["allowed_registries"] = ["registry.example.test:5000/other"]
    # issue 31: the admin also deletes gamma's item instead of setting state: absent
    hostings = [h for h in hostings if h["name"] != DROPPED]
    seen = {name: {} for name in all_labs}
    for name, lab in all_labs.items():
        lab.run(f"rm -f {ROOT}/logs/pod_start.log")
        seen[name]["beta_pid"] = main_pid(lab, "beta")
        seen[name]["dropped_pid"] = main_pid(lab, DROPPED)
    seen["run"] = run_site(list(all_labs), extra_vars={"webhosting_hostings": hostings})
    for name, lab in all_labs.items():
        seen[name]["active"] = active(lab)
        seen[name]["log"] = lab.run(f"cat {ROOT}/logs/pod_start.log").stdout
        seen[name]["beta_pid_after"] = main_pid(lab, "beta")
        seen[name]["dropped_pid_after"] = main_pid(lab, DROPPED)
        seen[name]["dropped_serves"] = (
            lab.run(f"curl -fsS --max-time 5 -o /dev/null https://{DROPPED}.example.test/").rc == 0
        )
    seen["restore"] = run_site(list(all_labs))
    for name, lab in all_labs.items():
        seen[name]["restored"] = wait_until(
            "alpha serves", lambda lab=lab: version(lab) == "1", 120, 1
        )
    return seen


DROPPED = "gamma"


def main_pid(lab, name):
    return lab.check_output(
        f"systemctl --user --machine={name}@ show -p MainPID --value webhosting-pod.service"
    ).strip()


def lab_inventory_dir():
    return Path(__file__).parents[1] / "inventory"


def test_a_tightened_policy_wins_over_the_running_pod(lab, tightened):
    host = lab.backend.name
    rc, stats, out = tightened["run"]
    assert rc != 0, out
    assert f"hosting {NAME}: the policy admits neither" in out
    assert "is not from an allowed registry (registry.example.test:5000/other)" in out
    seen = tightened[host]
    assert seen["active"] != "active"
    assert "the pod was NOT started" in seen["log"]
    # the other hostings went on, untouched
    assert seen["beta_pid_after"] == seen["beta_pid"] != "0"
    rc, stats, out = tightened["restore"]
    assert rc == 0, out
    assert seen["restored"]


def test_a_hosting_dropped_from_the_inventory_is_reported_and_keeps_serving(lab, tightened):
    """gamma's item deleted (not state: absent): the run names it, with what to do, and
    removes nothing; it keeps serving on its own pod."""
    run = tightened["run"]
    out = json.dumps(run.report, ensure_ascii=False)  # the whole run, not the tail
    assert f"hosting {DROPPED} is on this host (/srv/hostings/{DROPPED}" in out, run[2]
    assert "set it with state: absent to remove it" in out
    assert f"are not in the inventory and nothing manages them: {DROPPED}." in out
    seen = tightened[lab.backend.name]
    assert seen["dropped_pid_after"] == seen["dropped_pid"] != "0"
    assert seen["dropped_serves"]
    assert lab.file(f"/srv/hostings/{DROPPED}").is_directory


def test_the_container_log_and_the_sockets_are_out_of_the_tenants_reach(
    lab, sftp, wait_until, container_pids
):
    """conmon appends to logs/<hosting>-<pod>.log following links, and nginx connects to the
    socket by its path: the tenant can neither swap the log for a link nor reach the socket
    directory (it is outside the chroot)."""
    log = f"logs/{NAME}-{NAME}.log"
    f = lab.file(f"{ROOT}/{log}")
    assert (f.user, f.group, f.mode, f.is_file) == ("root", NAME, 0o660, True)
    logs = lab.file(f"{ROOT}/logs")
    assert (logs.user, logs.group, logs.mode) == ("root", NAME, 0o1770)
    before = lab.check_output(f"stat -c %i {ROOT}/{log}")
    for line in (
        f"rename /{log} /logs/moved.log",
        f"rm /{log}",
        f"symlink /etc/passwd /{log}",
        "rename /logs /logs.old",
    ):
        res = sftp(lab, NAME, 1, [line])
        # refused by the server for the file's owner and the sticky folder (a symlink over
        # an existing name fails as such, "Failure")
        reasons = (
            ("Permission denied", "Failure")
            if line.startswith("symlink")
            else ("Permission denied",)
        )
        assert res.rc != 0 and any(r in res.stderr for r in reasons), (line, res.stderr)
    assert lab.check_output(f"stat -c %i {ROOT}/{log}") == before
    assert not lab.file(f"{ROOT}/{log}").is_symlink
    # the tenant still keeps files of their own there
    res = sftp(
        lab,
        NAME,
        1,
        [f"put {local_file(lab, 'note', 'mine')} /logs/note.txt", "rm /logs/note.txt"],
    )
    assert res.rc == 0, res.stderr
    # the container output still arrives: a line written to a container process's stdout
    # (conmon's end of it) lands in that file (busybox httpd logs no requests by itself)
    marker = f"marker-{time.time_ns()}"
    pids = [pid for pid, _uid, _comm in container_pids(lab, NAME)]
    written = [lab.run(f"echo {marker} > /proc/{pid}/fd/1").rc == 0 for pid in pids]
    assert any(written), pids
    wait_until(
        "the container's output in its log",
        lambda: lab.run(f"grep -q {marker} {ROOT}/{log}").rc == 0,
        10,
        0.5,
    )
    sock = lab.file(f"/run/webhosting-pods/{NAME}/8080")
    assert sock.is_socket and sock.user == NAME
    res = sftp(lab, NAME, 1, [f"ls /run/webhosting-pods/{NAME}"])
    assert res.rc != 0 and "not found" in res.stderr, res.stderr  # outside the chroot


def test_a_locked_trigger_folder_cannot_make_the_trigger_loop(lab, sftp, wait_until):
    """The tenant creates the restart trigger and takes their own write permission away
    from its folder (so that it could not be removed): the pod restarts once, the folder is
    writable again, the trigger is gone and the root path unit does not fire in a loop."""
    trigger_dir = f"{ROOT}/scripts/pod_restart"
    since = lab.check_output("date '+%Y-%m-%d %H:%M:%S'").strip()
    lab.run(f"rm -f {ROOT}/logs/pod_restart.log")
    res = sftp(
        lab,
        NAME,
        1,
        [
            f"put {local_file(lab, 'empty', '')} /scripts/pod_restart/pod_restart.run",
            "chmod 500 /scripts/pod_restart",
        ],
    )
    assert res.rc == 0, res.stderr
    try:
        wait_until(
            "the trigger is handled",
            lambda: (
                not lab.file(f"{trigger_dir}/pod_restart.run").exists
                and "pod restarted (trigger)" in lab.run(f"cat {ROOT}/logs/pod_restart.log").stdout
            ),
            120,
            1,
        )
        assert lab.file(trigger_dir).mode & 0o700 == 0o700
        time.sleep(10)  # a loop would fire again and again meanwhile
        journal = lab.check_output(
            f"journalctl --no-pager -o cat --since {shlex.quote(since)}"
            f" -u webhosting-trigger@{NAME}.service"
        )
        starts = journal.count(f"Restart trigger of the pod of hosting {NAME}...")
        assert 1 <= starts <= 2, journal
        assert lab.run(f"cat {ROOT}/logs/pod_restart.log").stdout.count("pod restarted") == 1
    finally:
        lab.run(f"chmod 0750 {trigger_dir}")
    wait_until("alpha serves", lambda: version(lab) == "1", 90, 1)


def _podman_images(lab):
    return lab.check_output(
        f"cd /tmp && runuser -u {NAME} -- env USER={NAME}"
        f" XDG_RUNTIME_DIR=/run/user/$(id -u {NAME})"
        f" XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{NAME}/config"
        " podman images --format '{{.Repository}}:{{.Tag}}'"
    ).split()


def test_a_restart_beyond_the_storage_bound_is_refused(lab, sftp, wait_until):
    """With the hosting's container storage bound below what the images take (what the
    role writes for container_storage_max: 1M, set here in ops.json directly to spare two
    playbook runs), a tenant's restart onto a new image is refused: the pod keeps serving
    version 1, the tenant reads why, and the image pulled for it is removed again."""
    ops = f"/etc/webhosting-pods/hostings/{NAME}/ops.json"
    original_ops = lab.file(ops).content_string
    original = lab.file(ROOT + POD).content_string
    assert "lab/httpd:1" in original
    config = json.loads(original_ops)
    config["storage_max_bytes"] = 1024 * 1024
    lab.check_output(f"printf %s {shlex.quote(json.dumps(config))} > {ops}")
    lab.run(f"rm -f {ROOT}/logs/pod_restart.log")
    try:
        res = sftp(
            lab,
            NAME,
            1,
            [
                f"put {local_file(lab, 'v2.yaml', original.replace('httpd:1', 'httpd:2'))}"
                f" {POD}.part",
                f"rename {POD}.part {POD}",
                f"put {local_file(lab, 'empty', '')} /scripts/pod_restart/pod_restart.run",
            ],
        )
        assert res.rc == 0, res.stderr
        wait_until(
            "the refusal",
            lambda: "NOT restarted" in lab.run(f"cat {ROOT}/logs/pod_restart.log").stdout,
            120,
            1,
        )
        log = lab.file(f"{ROOT}/logs/pod_restart.log").content_string
        assert "the images and containers take" in log and "more than the 1.0 MiB" in log
        assert version(lab) == "1"
        assert not any(image.endswith("/lab/httpd:2") for image in _podman_images(lab))
    finally:
        lab.check_output(f"printf %s {shlex.quote(original_ops)} > {ops}")
        sftp(lab, NAME, 1, [f"put {local_file(lab, 'good.yaml', original)} {POD}"])
    assert version(lab) == "1"
