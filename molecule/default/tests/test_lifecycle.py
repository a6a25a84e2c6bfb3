"""The admin's cycle, from the outside: dry run after converge, an inventory change applied
while the tenant's own edit survives, and a host reboot bringing every pod back.

These checks run site.yml themselves (the run_site fixture, as an admin would; one run
for all lab hosts, which converge in parallel) and read the result through /proc and
systemd in each lab host. The runs happen once, in session fixtures (pytest groups the
checks by lab host, so a module fixture would run again for the second host); each test
then looks at one host's observations.
"""

import base64
import copy
import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

GROUP_VARS = Path(__file__).parents[1] / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
NAMES = [h["name"] for h in HOSTINGS if h.get("state", "present") == "present"]
BY_NAME = {h["name"]: h for h in HOSTINGS}
CHANGED, OTHER = "alpha", "beta"
POD_FILE = f"/srv/hostings/{CHANGED}/private/container-config/pod-{CHANGED}.yaml"


def pod_main_pid(lab, name):
    out = lab.check_output(
        f"systemctl --user --machine={name}@ show --property=MainPID --value webhosting-pod.service"
    )
    return int(out.strip() or 0)


def pod_active(lab, name):
    out = lab.run(f"systemctl --user --machine={name}@ is-active webhosting-pod.service")
    return out.stdout.strip() == "active"


def web_process(lab, name, container_pids):
    """PID of the hosting's busybox httpd (the `web` container's main process), or None."""
    for pid, _uid, _comm in container_pids(lab, name):
        args = lab.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
        if "httpd" in args:
            return pid
    return None


def web_view(lab, name, container_pids, wait_until):
    """What the web container runs with: its environment, its root mount, its pod file."""
    pid = wait_until(f"{name}'s web process", lambda: web_process(lab, name, container_pids), 60)
    raw = lab.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    env = dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)
    root = lab.check_output(f"awk '$5 == \"/\" {{print $6}}' /proc/{pid}/mountinfo")
    return {
        "env": env,
        "root": root.split(","),
        "pod_file_sha256": lab.file(POD_FILE).sha256sum,
    }


def write_as_tenant(lab, name, path, text):
    """Write a file the way the tenant's SFTP client does: as the hosting user."""
    uid, gid = BY_NAME[name]["uid"], BY_NAME[name]["gid"]
    data = base64.b64encode(text.encode()).decode()
    lab.check_output(
        f"echo {data} | base64 -d | setpriv --reuid={uid} --regid={gid} --clear-groups"
        f" -- /bin/sh -c 'cat > {path}'"
    )


@pytest.fixture(scope="session")
def dry_run(all_labs, run_site):
    return run_site(list(all_labs), "--check")


def test_dry_run_after_converge_changes_nothing(lab, dry_run):
    rc, stats, out = dry_run
    assert rc == 0, out
    assert stats[lab.backend.name]["changed"] == 0, f"{stats}\n{out}"


def test_converged_hostings_cost_no_task_of_their_own(lab, dry_run):
    # The host-wide calls found every hosting converged: none went through the per-hosting
    # tasks, whose names all name their hosting (what keeps a no-op run of many hostings
    # short, see docs/benchmarks.md).
    ran = dry_run.tasks(lab.backend.name)
    assert "Decide which hostings need work" in ran, ran
    assert "Decide which hostings' ingress needs work" in ran, ran
    own = [t for t in ran for n in BY_NAME if re.search(rf"\b{n}\b", t)]
    assert own == [], own


@pytest.fixture(scope="session")
def inventory_change(all_labs, run_site, container_pids, wait_until, sftp_refused):
    """The tenant edits their pod file; the admin changes an env file and a policy override, runs
    site.yml, then goes back to the committed inventory and runs it again."""
    seen = {name: {} for name in all_labs}
    for host, lab in all_labs.items():
        spec = yaml.safe_load(lab.file(POD_FILE).content_string)
        web = next(c for c in spec["spec"]["containers"] if c["name"] == "web")
        web["env"] = [e for e in web.get("env", []) if e["name"] != "TENANT_NOTE"]
        web["env"].append({"name": "TENANT_NOTE", "value": "edited by the tenant"})
        edited = yaml.safe_dump(spec, sort_keys=False)
        write_as_tenant(lab, CHANGED, POD_FILE, edited)
        seen[host]["edited_sha256"] = hashlib.sha256(edited.encode()).hexdigest()
        seen[host]["before"] = {n: pod_main_pid(lab, n) for n in (CHANGED, OTHER)}

    hostings = copy.deepcopy(HOSTINGS)
    changed = next(h for h in hostings if h["name"] == CHANGED)
    changed["env_files"]["web"]["GREETING"] = "changed by the admin"
    changed.setdefault("policy", {}).setdefault("containers", {})["web"] = {
        "read_only_root_filesystem": False
    }
    # The admin replaces the tenant's SFTP key 1 by key 3 (tests/conftest.py, ssh keys).
    changed["sftp"]["authorized_keys"] = [
        changed["sftp"]["authorized_keys"][0].replace("/tenant-keys/1.pub", "/tenant-keys/3.pub")
    ]
    seen["changed_run"] = run_site(list(all_labs), extra_vars={"webhosting_hostings": hostings})
    for host, lab in all_labs.items():
        seen[host]["after"] = {n: pod_main_pid(lab, n) for n in (CHANGED, OTHER)}
        seen[host]["changed_view"] = web_view(lab, CHANGED, container_pids, wait_until)
        seen[host]["sftp_changed"] = {k: not sftp_refused(lab, CHANGED, k) for k in (1, 3)}

    seen["restore_run"] = run_site(list(all_labs))
    for host, lab in all_labs.items():
        seen[host]["restored_view"] = web_view(lab, CHANGED, container_pids, wait_until)
        seen[host]["sftp_restored"] = {k: not sftp_refused(lab, CHANGED, k) for k in (1, 3)}
    return seen


def test_inventory_key_change_takes_effect_at_the_next_converge(lab, inventory_change):
    """A key removed from the inventory logs in no more after the run; the new one does."""
    seen = inventory_change[lab.backend.name]
    assert seen["sftp_changed"] == {1: False, 3: True}  # logs in?
    assert seen["sftp_restored"] == {1: True, 3: False}


def test_inventory_change_is_applied_and_the_tenant_edit_survives(lab, inventory_change):
    host = lab.backend.name
    rc, stats, out = inventory_change["changed_run"]
    assert rc == 0, out
    assert stats[host]["changed"] > 0, out
    seen = inventory_change[host]
    # Only the changed hosting was restarted.
    assert seen["after"][CHANGED] not in (0, seen["before"][CHANGED])
    assert seen["after"][OTHER] == seen["before"][OTHER]
    # It runs with the admin's new env file value and policy, and with the tenant's edit.
    view = seen["changed_view"]
    assert view["env"].get("GREETING") == "changed by the admin"
    assert view["env"].get("TENANT_NOTE") == "edited by the tenant"
    assert "rw" in view["root"]
    # The tenant's file is untouched, byte for byte.
    assert view["pod_file_sha256"] == seen["edited_sha256"]


def test_committed_inventory_is_applied_again_and_the_tenant_edit_still_kept(lab, inventory_change):
    rc, _stats, out = inventory_change["restore_run"]
    assert rc == 0, out
    seen = inventory_change[lab.backend.name]
    view = seen["restored_view"]
    assert view["env"].get("GREETING") == BY_NAME[CHANGED]["env_files"]["web"]["GREETING"]
    assert view["env"].get("TENANT_NOTE") == "edited by the tenant"
    assert "ro" in view["root"]
    assert view["pod_file_sha256"] == seen["edited_sha256"]


@pytest.fixture(scope="session")
def rebooted(all_labs, labctl):
    """`labctl reboot` of every lab host at once: the disk survives, every process is new."""
    before = {h: {n: pod_main_pid(lab, n) for n in NAMES} for h, lab in all_labs.items()}
    procs = [
        subprocess.Popen(
            [str(labctl), "reboot", h], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for h in all_labs
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode(errors="replace")
    return before


@pytest.mark.last
def test_reboot_brings_every_pod_back(lab, rebooted, container_pids, wait_until):
    before = rebooted[lab.backend.name]
    for name in NAMES:
        wait_until(f"the pod of {name} after the reboot", lambda n=name: pod_active(lab, n))
        assert pod_main_pid(lab, name) not in (0, before[name])
        wait_until(f"the containers of {name}", lambda n=name: container_pids(lab, n), 60)
    # Served again through nginx and the unix sockets, as clients see it.
    for name in NAMES:
        domain = BY_NAME[name]["domains"][0]
        wait_until(
            f"https://{domain}/ after the reboot",
            lambda d=domain: lab.run(f"curl -fsS --max-time 5 https://{d}/").rc == 0,
            120,
        )
