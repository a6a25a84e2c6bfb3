"""The policy holds at every start, checked from the outside on alpha: the tenant works over
SFTP (OpenSSH's sftp client, tenant key 1), the admin restarts the pod unit (as a reboot or
an image update would) or runs site.yml with a tightened policy. A pod whose spec no longer
validates never starts from an older rendered spec; its tenant reads why in
logs/pod_start.log. Everything is restored at the end: alpha serves version 1.
"""

import shlex
from pathlib import Path

import pytest
import yaml

NAME = "alpha"
ROOT = f"/srv/hostings/{NAME}"
POD = "/private/container-config/pod.yaml"
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
    """Upload pod.yaml and create the restart trigger; wait for the restart's log line."""
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


def test_a_broken_edit_starts_the_last_valid_pod(lab, sftp, wait_until):
    """A start after the tenant broke pod.yaml runs the last valid version, rendered again."""
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
    seen = {name: {} for name in all_labs}
    for name, lab in all_labs.items():
        lab.run(f"rm -f {ROOT}/logs/pod_start.log")
        seen[name]["beta_pid"] = lab.check_output(
            "systemctl --user --machine=beta@ show -p MainPID --value webhosting-pod.service"
        ).strip()
    seen["run"] = run_site(list(all_labs), extra_vars={"webhosting_hostings": hostings})
    for name, lab in all_labs.items():
        seen[name]["active"] = active(lab)
        seen[name]["log"] = lab.run(f"cat {ROOT}/logs/pod_start.log").stdout
        seen[name]["beta_pid_after"] = lab.check_output(
            "systemctl --user --machine=beta@ show -p MainPID --value webhosting-pod.service"
        ).strip()
    seen["restore"] = run_site(list(all_labs))
    for name, lab in all_labs.items():
        seen[name]["restored"] = wait_until(
            "alpha serves", lambda lab=lab: version(lab) == "1", 120, 1
        )
    return seen


def lab_inventory_dir():
    return Path(__file__).parents[1] / "inventory"


def test_a_tightened_policy_wins_over_the_running_pod(lab, tightened):
    host = lab.backend.name
    rc, stats, out = tightened["run"]
    assert rc != 0, out
    assert f"hosting {NAME}: the policy admits neither" in out
    assert "allowed_registries" in out or "registry" in out
    seen = tightened[host]
    assert seen["active"] != "active"
    assert "the pod was NOT started" in seen["log"]
    # the other hostings went on, untouched
    assert seen["beta_pid_after"] == seen["beta_pid"] != "0"
    rc, stats, out = tightened["restore"]
    assert rc == 0, out
    assert seen["restored"]
