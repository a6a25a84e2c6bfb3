"""The hosting model: every path, file, unit and link of a hosting, computed in one place."""

import json

import pytest
import yaml
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_checks as hc
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm

SETTINGS = {
    "base_dir": "/srv/hostings",
    "state_base_dir": "/var/lib/webhosting-pods",
    "config_dir": "/etc/webhosting-pods",
    "socket_ports": [8080],
    "policy_defaults": {"allowed_registries": ["r.test"], "resources": {"memory": "1Gi", "cpu": 1}},
    "registry_server": "r.test:5000",
    "userpod_path": "/usr/local/bin/userpod",
    "podman_path": "/usr/bin/podman",
    "systemctl_path": "/usr/bin/systemctl",
    "pod_start_timeout": 300,
    "uid_min": 10000,
    "uid_max": 59999,
    "sftp_group": "webhosting-sftp",
    "sftp_tenant_keys": True,
}


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5Y3fWqKkM0pXQ3l2bqQJcY2kJm1e0cQ2n5X8yY9aT laptop"


def hosting(**extra):
    entry = {"name": "shop", "uid": 10001, "gid": 10001, "domains": ["shop.test"]}
    entry.update(extra)
    return entry


def by_path(group):
    return {entry["path"]: entry for entry in group["paths"]}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("root", "/srv/hostings/shop"),
        ("pod_file", "/srv/hostings/shop/private/container-config/pod-shop.yaml"),
        ("tenant_policy_file", "/srv/hostings/shop/private/container-config/system-shop.yaml"),
        (
            "tenant_auth_file",
            "/srv/hostings/shop/private/container-config/auth-shop-registry.yaml",
        ),
        ("auth_file", "/var/lib/webhosting-pods/state/shop/auth.json"),
        ("provider_auth_file", "/etc/webhosting-pods/hostings/shop/auth.json"),
        ("provider_env_dir", "/etc/webhosting-pods/hostings/shop/env"),
        ("rendered_file", "/var/lib/webhosting-pods/state/shop/pod.yaml"),
        ("policy_file", "/etc/webhosting-pods/hostings/shop/system.yaml"),
        ("unit_dir", "/var/lib/webhosting-pods/users/shop/.config/systemd/user"),
        ("trigger", "/srv/hostings/shop/scripts/pod_restart/pod_restart.run"),
        ("trigger_unit", "webhosting-trigger@shop.path"),
        ("linger_file", "/var/lib/systemd/linger/shop"),
        ("pod_log", "/srv/hostings/shop/logs/shop-shop.log"),
        ("sockets", {8080: "/run/webhosting-pods/shop/8080"}),
        ("systemctl", ["systemctl", "--user", "--machine=shop@"]),
    ],
)
def test_layout_paths(key, expected):
    assert hm.layout(hosting(), SETTINGS)[key] == expected


def test_layout_follows_the_settings():
    settings = dict(
        SETTINGS, base_dir="/data/h", state_base_dir="/s", config_dir="/c", run_base_dir="/r"
    )
    model = hm.layout(hosting(socket_ports=[9000, 9001]), settings)
    assert model["pod_file"] == "/data/h/shop/private/container-config/pod-shop.yaml"
    assert model["home"] == "/s/users/shop"
    assert model["etc_dir"] == "/c/hostings/shop"
    assert model["sockets"] == {
        9000: "/r/shop/9000",
        9001: "/r/shop/9001",
    }


def test_policy_layers_defaults_overrides_and_layout():
    model = hm.layout(hosting(policy={"resources": {"memory": "2Gi"}, "network": "none"}), SETTINGS)
    policy = model["policy"]
    # recursive merge: the override changes memory and keeps cpu
    assert policy["resources"] == {"memory": "2Gi", "cpu": 1}
    assert policy["network"] == "none"
    assert policy["allowed_registries"] == ["r.test"]
    assert policy["volumes_base_dir"] == "/srv/hostings/shop"
    assert policy["socket_ports"] == {8080: {"dir": "/run/webhosting-pods/shop"}}
    assert policy["pidfile"] == "/var/lib/webhosting-pods/state/shop/pod.pid"
    # the defaults themselves are not changed by a hosting's override
    assert SETTINGS["policy_defaults"]["resources"] == {"memory": "1Gi", "cpu": 1}


def test_files_parents_first_and_owners():
    group = hm.files(hm.layout(hosting(), SETTINGS), hosting(), SETTINGS)
    order = [entry["path"] for entry in group["paths"]]
    for entry in group["paths"]:
        parent = entry["path"].rsplit("/", 1)[0]
        if parent in order:
            assert order.index(parent) < order.index(entry["path"]), entry["path"]
    paths = by_path(group)
    assert paths["/srv/hostings/shop"] == {
        "path": "/srv/hostings/shop",
        "state": "directory",
        "owner": 0,
        "group": 10001,
        "mode": "0750",
    }
    assert paths["/srv/hostings/shop/data"]["owner"] == 10001
    assert paths["/srv/hostings/shop/data"]["mode"] == "2770"
    assert paths["/var/lib/webhosting-pods/state/shop"]["mode"] == "0700"


def test_files_units_are_templates_with_the_model():
    model = hm.layout(
        hosting(
            cron_jobs=[{"name": "dump", "container": "db", "command": ["x"], "schedule": "daily"}]
        ),
        SETTINGS,
    )
    group = hm.files(model, hosting(), SETTINGS)
    assert group["vars"] == {"__hosting": model}
    unit_dir = model["unit_dir"]
    paths = by_path(group)
    assert paths[f"{unit_dir}/webhosting-pod.service"]["template"] == "webhosting-pod.service.j2"
    assert (
        paths[f"{unit_dir}/webhosting-cron-dump.timer"]["vars"]["__hosting_job"]["name"] == "dump"
    )
    link = paths[f"{unit_dir}/webhosting-pod.service.wants/webhosting-socket@8080.service"]
    assert link == {
        "path": link["path"],
        "state": "link",
        "src": "../webhosting-socket@.service",
        "owner": 0,
        "group": 0,
    }
    assert f"{unit_dir}/default.target.wants/webhosting-cron-dump.timer" in paths
    assert not any("template" in e and "content" in e for e in group["paths"])


def test_every_port_gets_a_forwarder_and_a_socket_outside_the_tenants_tree():
    model = hm.layout(hosting(socket_ports=[8080, 9000]), SETTINGS)
    assert model["socket_units"] == [
        "webhosting-socket@8080.service",
        "webhosting-socket@9000.service",
    ]
    assert model["sockets"][9000] == "/run/webhosting-pods/shop/9000"
    assert not model["sockets"][9000].startswith(model["root"] + "/")
    assert model["run_dir"] in model["left_paths"]


def test_the_container_log_is_roots_in_a_sticky_logs_dir():
    model = hm.layout(hosting(), SETTINGS)
    group = hm.files(model, hosting(), SETTINGS)
    by_path = {e["path"]: e for e in group["paths"]}
    logs = by_path["/srv/hostings/shop/logs"]
    assert (logs["owner"], logs["group"], logs["mode"]) == (0, 10001, "1770")
    log = by_path["/srv/hostings/shop/logs/shop-shop.log"]
    assert (log["owner"], log["group"], log["mode"], log["keep_content"]) == (
        0,
        10001,
        "0660",
        True,
    )


def test_files_secrets_policy_env_and_seed():
    h = hosting(
        registry={"user": "u", "password": "p"},
        env_files={"web": {"A": "b c", "N": 1}},
        pod={"apiVersion": "v1", "kind": "Pod"},
    )
    group = hm.files(hm.layout(h, SETTINGS), h, SETTINGS)
    paths = by_path(group)
    auth = paths["/etc/webhosting-pods/hostings/shop/auth.json"]
    assert (auth["owner"], auth["group"], auth["mode"]) == (0, 10001, "0640")
    assert json.loads(auth["content"]) == {"auths": {"r.test:5000": {"auth": "dTpw"}}}
    env = paths["/etc/webhosting-pods/hostings/shop/env/shop-web.env"]
    assert (env["owner"], env["group"], env["mode"]) == (0, 10001, "0640")
    assert env["content"].splitlines()[-2:] == ["A=b c", "N=1"]
    assert paths["/etc/webhosting-pods/hostings/shop/env"]["mode"] == "0750"
    policy = paths["/etc/webhosting-pods/hostings/shop/system.yaml"]["content"]
    assert yaml.safe_load(policy)["provider_env_dir"] == "/etc/webhosting-pods/hostings/shop/env"
    assert yaml.safe_load(policy)["name"] == "shop"
    cc = "/srv/hostings/shop/private/container-config"
    assert paths[cc + "/system-shop.yaml"]["content"] == policy
    seed = paths[cc + "/pod-shop.yaml"]
    assert seed["create_only"] is True and yaml.safe_load(seed["content"])["kind"] == "Pod"
    # the pod file of a release before 0.3 is moved first, so the seed never replaces it
    moved = paths[cc + "/pod.yaml"]
    assert moved == {"path": cc + "/pod.yaml", "state": "moved", "dest": cc + "/pod-shop.yaml"}
    order = [entry["path"] for entry in group["paths"]]
    assert order.index(cc + "/pod.yaml") < order.index(cc + "/pod-shop.yaml")
    tenant_auth = paths[cc + "/auth-shop-registry.yaml"]
    assert (tenant_auth["owner"], tenant_auth["create_only"]) == (10001, True)
    assert "password" not in yaml.safe_load(tenant_auth["content"] + "{}\n")
    assert {"dir": cc, "pattern": "system.yaml", "owner": 0} in group["prune"]
    ops = json.loads(paths["/etc/webhosting-pods/hostings/shop/ops.json"]["content"])
    assert ops["pod_file_shown"] == "private/container-config/pod-shop.yaml"
    assert ops["tenant_auth_shown"] == "private/container-config/auth-shop-registry.yaml"
    assert ops["auth_file"] == "/var/lib/webhosting-pods/state/shop/auth.json"


def test_no_registry_removes_the_auth_file():
    paths = by_path(hm.files(hm.layout(hosting(), SETTINGS), hosting(), SETTINGS))
    assert paths["/etc/webhosting-pods/hostings/shop/auth.json"] == {
        "path": "/etc/webhosting-pods/hostings/shop/auth.json",
        "state": "absent",
    }


def test_plan_selects_and_publishes():
    hostings = [hosting(), hosting(name="blog", uid=10002, gid=10002, state="absent")]
    plan = hm.plan(hostings, SETTINGS, "blog")
    assert plan["names"] == ["blog"] and plan["present"] == [] and plan["absent"] == ["blog"]
    assert "/var/lib/systemd/linger/blog" in plan["left_paths"]
    # every hosting is published, whatever the limit
    assert plan["published"]["shop"]["sockets"] == {"8080": "/run/webhosting-pods/shop/8080"}
    assert hm.plan(hostings, SETTINGS, [])["state_users"][0]["units"][0] == "webhosting-pod.service"


def test_renders_skip_failed_and_missing_pod_files():
    plan = hm.plan([hosting(), hosting(name="blog", uid=10002, gid=10002)], SETTINGS, [])
    pod = "/srv/hostings/shop/private/container-config/pod-shop.yaml"
    results = {"shop": {"exists": {pod: True}}, "blog": {"failed": True}}
    renders = hm.renders(plan, results)
    assert [r["name"] for r in renders] == ["shop"]
    assert renders[0]["dest"] == "/var/lib/webhosting-pods/state/shop/pod.yaml"
    assert renders[0]["owner"] == "10001"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Shop"}, "webhosting_hostings[0] (Shop).name: must be a lowercase user name"),
        ({"uid": 5}, "webhosting_hostings[0] (shop).uid: 5 is outside 10000-59999"),
        ({"domains": ["Bad_Domain"]}, ".domains[0]: Bad_Domain is not a lowercase domain name"),
        ({"socket_ports": []}, ".socket_ports: at least one port is needed"),
        ({"socket_ports": [80, 80]}, ".socket_ports[1]: 80 is listed twice"),
        ({"socket_ports": [70000]}, ".socket_ports[0]: 70000 is not a port number"),
        ({"pod": "text"}, ".pod: must be a mapping"),
        ({"env_files": {"web": {"1X": "a"}}}, ".env_files.web.1X: not a valid variable name"),
        ({"env_files": {"web": {"A": "a\nb"}}}, ".env_files.web.A: the value must be one line"),
        ({"registry": {"user": "u"}}, ".registry: needs user and password"),
        ({"cron_jobs": [{"name": "x", "container": "web"}]}, ".cron_jobs[0].command: required"),
        ({"policy": {"pidfile": "/x"}}, ".policy.pidfile: is computed from the hosting layout"),
        ({"sftp": ["k"]}, ".sftp: must be a mapping"),
        ({"sftp": {"keys": []}}, ".sftp.keys: unknown key"),
        ({"sftp": {"tenant_keys": "yes"}}, ".sftp.tenant_keys: must be true or false"),
        (
            {"sftp": {"authorized_keys": "ssh-ed25519 AAAA"}},
            ".sftp.authorized_keys: must be a list",
        ),
        (
            {"sftp": {"authorized_keys": [KEY, 'command="sh" ' + KEY]}},
            "webhosting_hostings[0] (shop).sftp.authorized_keys[1]: starts with options",
        ),
        (
            {"sftp": {"authorized_keys": [KEY + "\n" + KEY]}},
            ".sftp.authorized_keys[0]: must be one line",
        ),
        ({"sftp": {"authorized_keys": ["ssh-dss AAAA"]}}, ".sftp.authorized_keys[0]: DSA keys"),
        ({"container_storage_max": "10 GB"}, ".container_storage_max: '10 GB' is not a size"),
        ({"container_storage_max": -1}, ".container_storage_max: -1 is not a size"),
        (
            {"ingress": {"app_socket_ports": [9000]}},
            ".ingress.app_socket_ports: no longer supported",
        ),
        ({"limits": [512]}, ".limits: must be a mapping"),
        ({"limits": {"pids": 512}}, ".limits.pids: unknown key"),
        ({"limits": {"tasks_max": 8}}, ".limits.tasks_max: 8 is not a number of processes"),
        ({"limits": {"tasks_max": "lots"}}, ".limits.tasks_max: 'lots' is not a number"),
        ({"limits": {"memory_max": "1M"}}, ".limits.memory_max: '1M' is not a size of at least"),
        ({"limits": {"cpu_weight": 0}}, ".limits.cpu_weight: 0 is not a weight"),
        ({"limits": {"cpu_weight": "infinity"}}, ".limits.cpu_weight: 'infinity' is not"),
    ],
)
def test_preflight_names_the_field(change, message):
    errors = hc.preflight_errors([hosting(**change)], SETTINGS, {}, {}, [])
    assert any(message in error for error in errors), errors


def test_preflight_host_accounts_and_duplicates():
    passwd = {"shop": ["x", "10005", "10005", "", "/", "/bin/sh"], "other": ["x", "10002"]}
    hostings = [hosting(), hosting(name="blog", uid=10002, gid=10001, domains=["shop.test"])]
    errors = hc.preflight_errors(hostings, SETTINGS, passwd, {}, "nope")
    assert "webhosting_hosting_limit: no hosting is named nope" in errors
    assert any("user shop already exists on the host with uid 10005" in e for e in errors)
    assert any(".uid: 10002 already belongs to user other" in e for e in errors)
    assert any(".gid: 10001 is used by 2 hostings" in e for e in errors)
    assert any(".domains[0]: shop.test is listed 2 times" in e for e in errors)
    assert hc.preflight_errors([hosting()], SETTINGS, {}, {}, []) == []


def converged_run(model):
    return {
        "passwd": {"shop": ["x", "10001", "10001", model["gecos"], model["home"], hm.NOLOGIN]},
        "groups": {"shop": ["x", "10001"], "webhosting-sftp": ["x", "998", "other,shop"]},
        "shadow": {"shop": ["!"]},
        "files": {
            "shop": {"actions": {}, "exists": {model["pod_file"]: True, model["linger_file"]: True}}
        },
        "pods": {"shop": {"changed": False}},
        "users": {
            "shop": {
                "manager": "active",
                "units": {
                    u: "active"
                    for u in [
                        "webhosting-pod.service",
                        *model["ops_triggers"],
                        *model["socket_units"],
                    ]
                },
            }
        },
        "system": {
            model["trigger_unit"]: {"active": "active", "file": "enabled"},
            model["keys_unit"]: {"active": "active", "file": "enabled"},
        },
        "acls": {model["data_dir"] + ":default": {str(model["uid"]): "rwx"}},
    }


def test_todo_converged_hosting_has_no_reason():
    model = hm.layout(hosting(), SETTINGS)
    assert hc.todo_reasons(model, converged_run(model)) == []


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r, m: r["shadow"].update(shop=["*"]), "user or group"),
        (lambda r, m: r["files"]["shop"]["actions"].update(x="updated"), "files changed"),
        (lambda r, m: r["files"]["shop"]["exists"].update({m["linger_file"]: False}), "no linger"),
        (lambda r, m: r["pods"].update(shop={"changed": True}), "rendered pod changed"),
        (lambda r, m: r["pods"].update(shop={"msg": "bad"}), "pod file does not validate"),
        (lambda r, m: r["users"]["shop"].update(manager="inactive"), "user manager inactive"),
        (
            lambda r, m: r["users"]["shop"]["units"].update(
                {"webhosting-socket@8080.service": "failed"}
            ),
            "webhosting-socket@8080.service failed",
        ),
        (lambda r, m: r["system"].clear(), "webhosting-trigger@shop.path not watching"),
    ],
)
def test_todo_reasons(mutate, reason):
    model = hm.layout(hosting(), SETTINGS)
    run = converged_run(model)
    mutate(run, model)
    assert reason in hc.todo_reasons(model, run)


def test_todo_stopped_pod_hides_its_forwarders():
    model = hm.layout(hosting(), SETTINGS)
    run = converged_run(model)
    run["users"]["shop"]["units"].update(
        {"webhosting-pod.service": "failed", "webhosting-socket@8080.service": "inactive"}
    )
    assert hc.todo_reasons(model, run) == ["webhosting-pod.service failed"]


def test_todo_absent_hosting_lists_what_is_left():
    model = hm.layout(hosting(state="absent"), SETTINGS)
    run = {
        "passwd": {},
        "groups": {"shop": ["x", "10001"]},
        "exists": {"/srv/hostings/shop": True, "/var/lib/systemd/linger/shop": False},
    }
    assert hc.todo_reasons(model, run) == ["user or group left", "/srv/hostings/shop left"]
    assert hc.todo_reasons(model, {"exists": {}}) == []


def test_sftp_keys_file_tenant_keys_and_the_sticky_config_directory():
    model = hm.layout(hosting(sftp={"authorized_keys": [KEY, " " + KEY + " "]}), SETTINGS)
    group = hm.files(model, hosting(), SETTINGS)
    by_path = {entry["path"]: entry for entry in group["paths"]}
    keys = by_path["/etc/webhosting-pods/hostings/shop/authorized_keys"]
    assert (keys["owner"], keys["group"], keys["mode"]) == (0, 10001, "0640")
    assert keys["content"].count(KEY) == 1 and keys["content"].startswith("# SFTP keys")
    seed = by_path["/srv/hostings/shop/scripts/ssh_keys/authorized_keys"]
    assert (seed["owner"], seed["create_only"]) == (10001, True)
    assert by_path["/srv/hostings/shop/private/container-config"]["mode"] == "1770"
    assert {"dir": model["container_config"], "pattern": "*.env", "owner": 0} in group["prune"]
    ops = json.loads(hm.ops_text(model, SETTINGS))["ssh_keys"]
    assert ops["source"] == "scripts/ssh_keys/authorized_keys"
    assert ops["dest"] == "/etc/webhosting-pods/hostings/shop/tenant_keys"


def test_sftp_without_keys_and_tenant_keys_off():
    model = hm.layout(hosting(sftp={"tenant_keys": False}), SETTINGS)
    by_path = {e["path"]: e for e in hm.files(model, hosting(), SETTINGS)["paths"]}
    assert by_path["/etc/webhosting-pods/hostings/shop/authorized_keys"]["state"] == "absent"
    assert by_path["/etc/webhosting-pods/hostings/shop/tenant_keys"]["state"] == "absent"
    assert "/srv/hostings/shop/scripts/ssh_keys/authorized_keys" not in by_path
    run = converged_run(model)
    assert hc.todo_reasons(model, run) == [
        "webhosting-keys@shop.path watching, tenant keys are off"
    ]
    run["system"][model["keys_unit"]] = {"active": "inactive", "file": "disabled"}
    assert hc.todo_reasons(model, run) == []


@pytest.mark.parametrize(
    ("groups", "ok"),
    [
        ({"webhosting-sftp": ["x", "998", "shop"]}, True),
        ({"webhosting-sftp": ["x", "998", "shopkeeper"]}, False),
        ({"webhosting-sftp": ["x", "998", ""]}, False),
        ({"webhosting-sftp": ["x", "998", "shop"], "sudo": ["x", "27", "shop"]}, False),
    ],
)
def test_account_needs_the_sftp_group_and_no_other(groups, ok):
    model = hm.layout(hosting(), SETTINGS)
    run = converged_run(model)
    run["groups"] = {"shop": ["x", "10001"], **groups}
    assert (hc.todo_reasons(model, run) == []) is ok


def test_data_needs_its_default_acl():
    model = hm.layout(hosting(), SETTINGS)
    run = converged_run(model)
    run["acls"] = {}
    assert hc.todo_reasons(model, run) == ["data/ default ACL"]
    plan = hm.plan([hosting()], SETTINGS, [])
    assert plan["acls"] == [{"path": "/srv/hostings/shop/data", "user": "10001", "default": True}]


@pytest.mark.parametrize(
    ("value", "size"),
    [(0, 0), (512, 512), ("500M", 500 * 1024**2), ("10G", 10 * 1024**3), ("2t", 2 * 1024**4)],
)
def test_size_bytes(value, size):
    assert hm.size_bytes(value) == size


@pytest.mark.parametrize("value", ["10 GB", "1.5G", "", "G", True, -1, None])
def test_size_bytes_refuses(value):
    assert hm.size_bytes(value) is None


def test_limits_are_root_owned_drop_ins_of_the_users_slice_and_manager():
    settings = dict(SETTINGS, limits={"tasks_max": 2048, "memory_max": "2G", "cpu_weight": 100})
    model = hm.layout(hosting(limits={"memory_max": "infinity", "tasks_max": 300}), settings)
    files = by_path(hm.files(model, hosting(), settings))
    slice_file = files["/etc/systemd/system/user-10001.slice.d/50-webhosting-pods.conf"]
    manager_file = files["/etc/systemd/system/user@10001.service.d/50-webhosting-pods.conf"]
    for entry in (slice_file, manager_file):
        assert (entry["owner"], entry["group"], entry["mode"]) == (0, 0, "0644")
    body = [line for line in slice_file["content"].splitlines() if not line.startswith("#")]
    assert body == ["[Slice]", "TasksMax=300", "MemoryMax=infinity", "CPUWeight=100"]
    body = [line for line in manager_file["content"].splitlines() if not line.startswith("#")]
    assert body == ["[Service]", "LimitNPROC=300"]
    assert slice_file["path"] in model["left_paths"] and manager_file["path"] in model["left_paths"]
    default = hm.layout(hosting(), settings)["limits"]
    assert default == {"tasks_max": 2048, "memory_max": 2 * 1024**3, "cpu_weight": 100}
    assert hc.preflight_errors([hosting()], dict(settings, limits={"tasks_max": 1}), {}, {}, [])


def test_a_changed_limit_is_seen_by_its_path():
    plan = {"models": {"shop": hm.layout(hosting(), SETTINGS)}}
    manager = plan["models"]["shop"]["manager_dropin"]
    assert hm.limits_changed(plan, {"shop": {"actions": {manager: "updated"}}})
    assert not hm.limits_changed(plan, {"shop": {"actions": {"/srv/x": "updated"}}})
    assert not hm.limits_changed(plan, {})


def test_the_storage_bound_reaches_podops():
    settings = dict(SETTINGS, container_storage_max="10G")
    ops = json.loads(hm.ops_text(hm.layout(hosting(), settings), settings))
    assert ops["storage_max_bytes"] == 10 * 1024**3
    assert ops["storage_dir"] == "/var/lib/webhosting-pods/storage/shop"
    own = hm.layout(hosting(container_storage_max="1G"), settings)
    assert own["storage_max_bytes"] == 1024**3
    assert hm.layout(hosting(), SETTINGS)["storage_max_bytes"] == 0


def test_changed_start_inputs_are_what_the_pod_unit_reads_at_its_start():
    """A converge that rewrites the policy, the provider's registry login or one of the
    provider's env files restarts the pod (tasks/pod.yml); the tenant's files, the units and
    the rendered pod are decided elsewhere, and nothing means no restart."""
    model = hm.layout(hosting(), SETTINGS)
    group = hm.files(model, hosting(env_files={"web": {"A": "1"}}), SETTINGS)
    written = {entry["path"] for entry in group["paths"]}
    etc = model["etc_dir"]
    # every start input is a file the converge lays out
    assert set(model["start_inputs"]) <= written | {model["provider_auth_file"]}
    actions = {
        f"{etc}/system.yaml": "updated",
        f"{etc}/auth.json": "created",
        f"{etc}/env/shop-web.env": "updated",
        f"{etc}/env-other/x": "updated",
        model["tenant_policy_file"]: "updated",
        model["pod_file"]: "created",
        f"{model['unit_dir']}/webhosting-pod.service": "updated",
    }
    assert hc.changed_start_inputs(model, actions) == [
        f"{etc}/auth.json",
        f"{etc}/env/shop-web.env",
        f"{etc}/system.yaml",
    ]
    assert hc.changed_start_inputs(model, {}) == []
    assert hc.changed_start_inputs(model, {model["pod_file"]: "created"}) == []


def test_an_expired_account_is_not_converged():
    """A removal that was refused after it locked the account (expire day 1) leaves the
    user expired: the hosting set present again needs work (its user task unlocks it)."""
    model = hm.layout(hosting(), SETTINGS)
    run = converged_run(model)
    run["shadow"]["shop"] = ["!", "20000", "0", "99999", "7", "", "", ""]
    assert hc.todo_reasons(model, run) == []
    run["shadow"]["shop"] = ["!", "20000", "0", "99999", "7", "", "1", ""]
    assert "user or group" in hc.todo_reasons(model, run)


def test_the_inventory_file_lists_the_present_hostings():
    """podops status marks a hosting with files here that this list does not name; a
    hosting being removed is not wanted, and the list is the same before and after a move
    (move.yml leaves the moved hosting absent on the old host, site.yml then drops it)."""
    shop, blog = hosting(), hosting(name="blog", uid=10002, gid=10002, state="absent")
    moving = hm.plan([shop, blog], SETTINGS, [])["inventory_file"]
    after = hm.plan([shop], SETTINGS, [])["inventory_file"]
    assert moving == after
    assert moving["path"] == "/etc/webhosting-pods/inventory.json"
    assert json.loads(moving["content"]) == {"hostings": ["shop"]}
    assert (moving["owner"], moving["mode"]) == (0, "0644")


def test_todo_absent_hosting_locks_the_account_once():
    """The removal expires the account before it archives (tasks/absent.yml): a user that
    exists and is not locked yet needs it, one already locked (a refused removal) does
    not, and a user that is gone has nothing to lock."""
    model = hm.layout(hosting(state="absent"), SETTINGS)
    entry = ["x", "10001", "10001", "", "/home/shop", hm.NOLOGIN]
    unlocked = {"passwd": {"shop": entry}, "shadow": {"shop": ["!", "1", "", "", "", "", ""]}}
    assert "account not locked" in hc.todo_reasons(model, unlocked)
    locked = dict(unlocked, shadow={"shop": ["!", "1", "", "", "", "", hm.LOCKED_EXPIRY]})
    assert "account not locked" not in hc.todo_reasons(model, locked)
    assert "account not locked" not in hc.todo_reasons(model, {"passwd": {}})
