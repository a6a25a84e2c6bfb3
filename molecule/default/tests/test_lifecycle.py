"""The admin's cycle, from the outside: dry run after converge, an inventory change applied
while the tenant's own edit survives, and a host reboot bringing every pod back.

These tests run site.yml themselves (the run_site fixture, as an admin would) and read
the result through /proc and systemd in the lab host.
"""

import base64
import copy
import hashlib
import subprocess
import time
from pathlib import Path

import pytest
import yaml

GROUP_VARS = Path(__file__).parents[1] / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
NAMES = [h["name"] for h in HOSTINGS if h.get("state", "present") == "present"]
BY_NAME = {h["name"]: h for h in HOSTINGS}


def pod_main_pid(lab, name):
    out = lab.check_output(
        f"systemctl --user --machine={name}@ show --property=MainPID --value webhosting-pod.service"
    )
    return int(out.strip() or 0)


def pod_active(lab, name):
    out = lab.run(f"systemctl --user --machine={name}@ is-active webhosting-pod.service")
    return out.stdout.strip() == "active"


def web_process(lab, name, container_pids):
    """PID of the hosting's busybox httpd (the `web` container's main process)."""
    for pid, _uid, comm in container_pids(lab, name):
        args = lab.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline || true")
        if comm.startswith(("httpd", "busybox")) and "httpd" in args:
            return pid
    raise AssertionError(f"no httpd process of {name}: {container_pids(lab, name)}")


def environ(lab, pid):
    raw = lab.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def root_mount_options(lab, pid):
    """Mount options of the container's / as its process sees it (ro or rw first)."""
    return lab.check_output(f"awk '$5 == \"/\" {{print $6}}' /proc/{pid}/mountinfo").split(",")


def wait_for(what, check, timeout=180, step=2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def write_as_tenant(lab, name, path, text):
    """Write a file the way the tenant's SFTP client does: as the hosting user."""
    uid, gid = BY_NAME[name]["uid"], BY_NAME[name]["gid"]
    data = base64.b64encode(text.encode()).decode()
    lab.check_output(
        f"echo {data} | base64 -d | setpriv --reuid={uid} --regid={gid} --clear-groups"
        f" -- /bin/sh -c 'cat > {path}'"
    )


def test_dry_run_after_converge_changes_nothing(lab, run_site):
    rc, stats, out = run_site(lab.backend.name, "--check")
    assert rc == 0, out
    assert stats.get("changed") == 0, f"{stats}\n{out}"


def test_inventory_change_is_applied_and_the_tenant_edit_survives(lab, run_site, container_pids):
    host = lab.backend.name
    name, other = "alpha", "beta"
    pod_file = f"/srv/hostings/{name}/private/container-config/pod.yaml"

    # The tenant edits their pod file (a new environment variable for `web`).
    spec = yaml.safe_load(lab.file(pod_file).content_string)
    web = next(c for c in spec["spec"]["containers"] if c["name"] == "web")
    web.setdefault("env", []).append({"name": "TENANT_NOTE", "value": "edited by the tenant"})
    edited = yaml.safe_dump(spec, sort_keys=False)
    write_as_tenant(lab, name, pod_file, edited)

    before, other_before = pod_main_pid(lab, name), pod_main_pid(lab, other)
    assert before and other_before

    # The admin changes the hosting's env file and a policy override in the inventory.
    hostings = copy.deepcopy(HOSTINGS)
    changed = next(h for h in hostings if h["name"] == name)
    changed["env_files"]["web"]["GREETING"] = "changed by the admin"
    changed.setdefault("policy", {}).setdefault("containers", {})["web"] = {
        "read_only_root_filesystem": False
    }
    rc, stats, out = run_site(host, extra_vars={"webhosting_hostings": hostings})
    assert rc == 0, out
    assert stats.get("changed", 0) > 0, out

    # Applied: the pod was restarted with the new env and policy, and the tenant's edit.
    assert pod_main_pid(lab, name) != before
    assert pod_active(lab, name)
    pid = wait_for("alpha's web process", lambda: web_process(lab, name, container_pids), 60)
    env = environ(lab, pid)
    assert env.get("GREETING") == "changed by the admin"
    assert env.get("TENANT_NOTE") == "edited by the tenant"
    assert "rw" in root_mount_options(lab, pid)
    # The tenant's file is untouched, byte for byte; the other hosting was not restarted.
    assert lab.file(pod_file).sha256sum == hashlib.sha256(edited.encode()).hexdigest()
    assert pod_main_pid(lab, other) == other_before

    # Back to the inventory as committed: applied again, the tenant's edit still kept.
    rc, stats, out = run_site(host)
    assert rc == 0, out
    pid = wait_for("alpha's web process", lambda: web_process(lab, name, container_pids), 60)
    env = environ(lab, pid)
    assert env.get("GREETING") == BY_NAME[name]["env_files"]["web"]["GREETING"]
    assert env.get("TENANT_NOTE") == "edited by the tenant"
    assert "ro" in root_mount_options(lab, pid)
    assert lab.file(pod_file).sha256sum == hashlib.sha256(edited.encode()).hexdigest()


@pytest.mark.last
def test_reboot_brings_every_pod_back(lab, labctl, container_pids):
    """`labctl reboot` is the lab's power cycle: the disk survives, every process is new."""
    host = lab.backend.name
    before = {name: pod_main_pid(lab, name) for name in NAMES}
    subprocess.run([str(labctl), "reboot", host], check=True, timeout=300, capture_output=True)
    for name in NAMES:
        wait_for(f"the pod of {name} after the reboot", lambda n=name: pod_active(lab, n))
        assert pod_main_pid(lab, name) not in (0, before[name])
        wait_for(f"the containers of {name}", lambda n=name: container_pids(lab, n), timeout=60)
    # Served again through nginx and the unix sockets, as clients see it.
    for name in NAMES:
        domain = BY_NAME[name]["domains"][0]
        wait_for(
            f"https://{domain}/ after the reboot",
            lambda d=domain: lab.run(f"curl -fsS --max-time 5 https://{d}/").rc == 0,
            timeout=120,
        )
