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
import json
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
# issue 31, in the same runs: the admin gives CHANGED a new domain and cuts ISOLATED off the
# network (a policy change alone); OTHER's tenant uploads a pod file that crashed the engine
# of 0.2.0 ("²" as a probe port; a port of 4310 digits, found by test_pod_policy_fuzz.py).
NEW_DOMAIN = f"{CHANGED}-new.example.test"
ISOLATED = "gamma"
OTHER_KEY = 2  # beta's SFTP key (inventory/group_vars)
OTHER_POD = f"/private/container-config/pod-{OTHER}.yaml"


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


def interfaces(lab, name, container_pids, wait_until):
    """The network interfaces a container of the hosting really has (its netns, read in
    /proc/PID/net/dev), once it runs."""
    pids = wait_until(f"{name}'s containers", lambda: container_pids(lab, name), 60)
    text = lab.check_output(f"cat /proc/{pids[-1][0]}/net/dev")
    return sorted(line.split(":", 1)[0].strip() for line in text.splitlines()[2:] if ":" in line)


def serves(lab, domain):
    return lab.run(f"curl -fsS --max-time 5 -o /dev/null https://{domain}/").rc == 0


def upload_as_tenant(lab, sftp, text):
    """OTHER's tenant replaces their pod file over SFTP (put, then rename over it)."""
    local = "/root/lifecycle-pod.yaml"
    data = base64.b64encode(text.encode()).decode()
    lab.check_output(f"echo {data} | base64 -d > {local} && chmod 0644 {local}")
    res = sftp(
        lab,
        OTHER,
        OTHER_KEY,
        [f"put {local} {OTHER_POD}.part", f"rename {OTHER_POD}.part {OTHER_POD}"],
    )
    assert res.rc == 0, res.stderr


def crashing_pod(text):
    """OTHER's pod with the probes that stopped every hosting's converge in 0.2.0."""
    spec = yaml.safe_load(text)
    web = next(c for c in spec["spec"]["containers"] if c["name"] == "web")
    web["livenessProbe"] = {"tcpSocket": {"port": "²"}}
    web["readinessProbe"] = {"httpGet": {"port": "9" * 4310, "path": "/"}}
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=10**6)


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
def inventory_change(all_labs, run_site, container_pids, wait_until, sftp_refused, sftp):
    """The tenant edits their pod file; the admin changes an env file and a policy override, runs
    site.yml, then goes back to the committed inventory and runs it again."""
    seen = {name: {} for name in all_labs}
    other_pod = f"/srv/hostings/{OTHER}{OTHER_POD}"
    for host, lab in all_labs.items():
        seen[host]["other_pod"] = lab.file(other_pod).content_string
        upload_as_tenant(lab, sftp, crashing_pod(seen[host]["other_pod"]))
        seen[host]["isolated_before"] = pod_main_pid(lab, ISOLATED)
        seen[host]["isolated_if_before"] = interfaces(lab, ISOLATED, container_pids, wait_until)
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
    changed["domains"] = changed["domains"] + [NEW_DOMAIN]
    isolated = next(h for h in hostings if h["name"] == ISOLATED)
    isolated.setdefault("policy", {})["network"] = "none"
    seen["changed_run"] = run_site(list(all_labs), extra_vars={"webhosting_hostings": hostings})
    for host, lab in all_labs.items():
        seen[host]["after"] = {n: pod_main_pid(lab, n) for n in (CHANGED, OTHER)}
        seen[host]["changed_view"] = web_view(lab, CHANGED, container_pids, wait_until)
        seen[host]["sftp_changed"] = {k: not sftp_refused(lab, CHANGED, k) for k in (1, 3)}
        seen[host]["new_domain"] = serves(lab, NEW_DOMAIN)
        seen[host]["other_serves"] = serves(lab, BY_NAME[OTHER]["domains"][0])
        seen[host]["isolated_after"] = pod_main_pid(lab, ISOLATED)
        seen[host]["isolated_if_after"] = interfaces(lab, ISOLATED, container_pids, wait_until)
        seen[host]["isolated_serves"] = serves(lab, BY_NAME[ISOLATED]["domains"][0])
        # the tenant fixes their file
        upload_as_tenant(lab, sftp, seen[host]["other_pod"])

    seen["restore_run"] = run_site(list(all_labs))
    for host, lab in all_labs.items():
        seen[host]["restored_view"] = web_view(lab, CHANGED, container_pids, wait_until)
        seen[host]["sftp_restored"] = {k: not sftp_refused(lab, CHANGED, k) for k in (1, 3)}
        seen[host]["isolated_if_restored"] = interfaces(lab, ISOLATED, container_pids, wait_until)
        seen[host]["other_restored"] = pod_main_pid(lab, OTHER)
    return seen


def test_inventory_key_change_takes_effect_at_the_next_converge(lab, inventory_change):
    """A key removed from the inventory logs in no more after the run; the new one does."""
    seen = inventory_change[lab.backend.name]
    assert seen["sftp_changed"] == {1: False, 3: True}  # logs in?
    assert seen["sftp_restored"] == {1: True, 3: False}


def test_inventory_change_is_applied_and_the_tenant_edit_survives(lab, inventory_change):
    host = lab.backend.name
    rc, stats, out = inventory_change["changed_run"]
    assert rc != 0, out  # OTHER's tenant file (test_one_tenant_never_blocks_the_others)
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


def test_one_tenant_never_blocks_the_others(lab, inventory_change):
    """OTHER's tenant uploaded a pod file that crashed the engine of 0.2.0 for every hosting
    of the host: now the run goes on for every other hosting and through ingress (CHANGED's
    new domain is served over HTTPS with its certificate), OTHER keeps serving its last
    valid pod, and the run ends non-zero naming OTHER, its file and the fields."""
    host = lab.backend.name
    out = json.dumps(inventory_change["changed_run"].report, ensure_ascii=False)
    seen = inventory_change[host]
    assert seen["new_domain"], out
    assert seen["after"][OTHER] == seen["before"][OTHER] and seen["other_serves"]
    summary = [line for line in out.splitlines() if "hosting(s) failed on" in line]
    assert summary, out
    assert f"hosting {OTHER}: the tenant" in summary[-1]
    assert f"pod-{OTHER}.yaml" in summary[-1]
    assert "livenessProbe.tcpSocket.port" in summary[-1]
    assert "readinessProbe.httpGet.port" in summary[-1]
    assert "Module failed" not in out and "Traceback" not in out


def test_a_policy_change_is_applied_by_the_same_converge(lab, inventory_change):
    """network: none added to a running hosting (nothing else of it changed): after the
    same run its pod has only lo and still serves through nginx; the committed inventory
    brings the network back. The no-op runs of the scenario (idempotence, the dry run)
    restart nothing."""
    seen = inventory_change[lab.backend.name]
    assert len(seen["isolated_if_before"]) > 1, seen["isolated_if_before"]
    assert seen["isolated_after"] not in (0, seen["isolated_before"])
    assert seen["isolated_if_after"] == ["lo"]
    assert seen["isolated_serves"]
    rc, _stats, out = inventory_change["restore_run"]
    assert rc == 0, out
    assert seen["isolated_if_restored"] == seen["isolated_if_before"]
    # the tenant's fixed file equals the last valid one: no restart for it
    assert seen["other_restored"] == seen["before"][OTHER]


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


@pytest.fixture(scope="session")
def typos(all_labs, run_site):
    """Typos an admin makes, each in its own run: keys of a hosting item (an ingress key, a
    policy value the engine refuses), then a misspelt role variable. Each run must stop
    before anything changes: every pod keeps its main process."""
    before = {h: {n: pod_main_pid(lab, n) for n in NAMES} for h, lab in all_labs.items()}
    hostings = copy.deepcopy(HOSTINGS)
    by_name = {h["name"]: h for h in hostings}
    by_name[CHANGED].setdefault("ingress", {})["hsts_maxage"] = 60
    by_name[OTHER].setdefault("policy", {})["allowed_registries"] = ["https://registry.example.net"]
    runs = {
        "keys": run_site(list(all_labs), extra_vars={"webhosting_hostings": hostings}),
        "variable": run_site(
            list(all_labs), extra_vars={"webhosting_policy_default": {"network": "none"}}
        ),
    }
    after = {h: {n: pod_main_pid(lab, n) for n in NAMES} for h, lab in all_labs.items()}
    return runs, before, after


def test_typos_stop_the_run_before_anything_changes(lab, typos):
    runs, before, after = typos
    rc, stats, out = runs["keys"]
    assert rc != 0, out
    assert f"({CHANGED}).ingress.hsts_maxage: unknown key (did you mean hsts_max_age?)" in out
    assert f"({OTHER}).policy.allowed_registries[0]" in out
    assert stats[lab.backend.name]["changed"] == 0, out
    rc, stats, out = runs["variable"]
    assert rc != 0, out
    assert "webhosting_policy_default: no role of webhosting.pods knows this variable" in out
    assert "(did you mean webhosting_policy_defaults?)" in out
    assert stats[lab.backend.name]["changed"] == 0, out
    host = lab.backend.name
    assert after[host] == before[host] and all(before[host].values())
