"""The bring-up of new hostings (plugins/module_utils/bringup.py) through a stand-in for
the commands: which commands run, how many hostings each takes, and that a failing
hosting is named while the others come up. The real thing runs in molecule and in
benchmarks/bench_hostings.py (every new hosting of a run goes through it)."""

import os
import subprocess

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_checks as hc
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm
from ansible_collections.webhosting.pods.plugins.module_utils.bringup import Bringup


class Runner:
    """Records every argv; ``fail`` maps a predicate on the argv to an error text."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail or (lambda argv: None)

    def __call__(self, argv, timeout):
        self.calls.append(argv)
        error = self.fail(argv)
        return subprocess.CompletedProcess(argv, 1 if error else 0, "journal line\n", error or "")

    def named(self, tool):
        return [argv for argv in self.calls if argv[0] == tool]


def item(tmp_path, name, uid):
    data = tmp_path / name / "data"
    data.mkdir(parents=True)
    return {
        "name": name,
        "uid": uid,
        "gid": uid,
        "gecos": f"webhosting pod user {name}",
        "home": f"/var/lib/webhosting-pods/users/{name}",
        "sftp_group": "wp-test-sftp-group-that-does-not-exist",
        "data_dir": str(data),
        "linger_file": str(tmp_path / name / "linger"),
        "unit": "webhosting-pod.service",
        "units": ["webhosting-pod-update.timer"],
        "system_units": [f"webhosting-trigger@{name}.path", f"webhosting-keys@{name}.path"],
    }


def test_new_hostings_come_up_in_waves_with_one_command_per_kind_of_work(tmp_path):
    items = [item(tmp_path, f"wpt-new{i}", 64001 + i) for i in range(3)]
    run = Runner()
    results = Bringup(items, parallel=2, run=run)()
    assert all(r["changed"] and "failed" not in r for r in results.values())
    (user,) = [a for a in run.named("useradd") if a[-1] == "wpt-new0"]
    assert (
        user[user.index("--uid") + 1] == "64001"
        and user[user.index("--shell") + 1] == "/usr/sbin/nologin"
    )
    assert (
        user[user.index("--password") + 1] == "!"
        and "--system" in user
        and "--no-create-home" in user
    )
    assert user[user.index("--groups") + 1] == "wp-test-sftp-group-that-does-not-exist"
    assert ["groupadd", "--gid", "64001", "--", "wpt-new0"] in run.calls
    acl = run.named("setfacl")[0]
    assert acl[-1] == items[0]["data_dir"] and "d" in acl[2] + acl[3] and acl[-3] == "u:64001:rwx"
    # linger and the managers' start: one command per wave of `parallel` hostings
    assert run.named("loginctl") == [
        ["loginctl", "enable-linger", "--", "wpt-new0", "wpt-new1"],
        ["loginctl", "enable-linger", "--", "wpt-new2"],
    ]
    assert ["systemctl", "start", "--", "user@64001.service", "user@64002.service"] in run.calls
    # the pod and the timers, in each user's manager
    assert [
        "systemctl",
        "--user",
        "--machine=wpt-new1@",
        "start",
        "--",
        "webhosting-pod.service",
        "webhosting-pod-update.timer",
    ] in run.calls
    # the triggers of all hostings in one call
    (enable,) = [a for a in run.calls if a[1:3] == ["enable", "--now"]]
    assert len(enable) == 4 + 6
    assert results["wpt-new1"]["actions"][-2:] == ["pod started", "triggers watching"]


def test_a_pod_that_does_not_start_is_named_with_its_journal(tmp_path):
    items = [item(tmp_path, f"wpt-new{i}", 64001 + i) for i in range(3)]

    def fail(argv):
        if "--machine=wpt-new1@" in argv:
            return "Job for webhosting-pod.service failed"
        return None

    results = Bringup(items, parallel=4, run=Runner(fail))()
    assert results["wpt-new1"]["failed"]
    assert "start the pod: Job for webhosting-pod.service failed" in results["wpt-new1"]["msg"]
    assert "journal line" in results["wpt-new1"]["msg"]
    assert "failed" not in results["wpt-new0"] and "failed" not in results["wpt-new2"]
    assert "triggers watching" not in results["wpt-new1"]["actions"]


def test_a_failing_trigger_is_found_one_hosting_at_a_time(tmp_path):
    items = [item(tmp_path, f"wpt-new{i}", 64001 + i) for i in range(2)]

    def fail(argv):
        if argv[1:3] == ["enable", "--now"] and "webhosting-trigger@wpt-new0.path" in argv:
            return "Unit file is masked"
        return None

    results = Bringup(items, run=Runner(fail))()
    assert results["wpt-new0"]["msg"] == "watch the triggers: Unit file is masked"
    assert "failed" not in results["wpt-new1"]


def test_a_user_that_cannot_be_created_stops_that_hosting_only(tmp_path):
    items = [item(tmp_path, f"wpt-new{i}", 64001 + i) for i in range(2)]
    run = Runner(
        lambda argv: (
            "useradd: UID 64001 is not unique" if "64001" in argv and argv[0] == "useradd" else None
        )
    )
    results = Bringup(items, run=run)()
    assert results["wpt-new0"]["msg"].startswith("create the user: useradd: UID 64001")
    assert not any("wpt-new0" in " ".join(a) for a in run.named("loginctl"))
    assert "failed" not in results["wpt-new1"]


def test_a_link_in_place_of_data_is_refused_not_followed(tmp_path):
    (h,) = [item(tmp_path, "wpt-new0", 64001)]
    os.rmdir(h["data_dir"])
    os.symlink("/etc", h["data_dir"])
    run = Runner()
    results = Bringup([h], run=run)()
    assert "is not a directory" in results["wpt-new0"]["msg"]
    assert run.named("setfacl") == []


SETTINGS_KEYS = {
    "base_dir": "/srv/hostings",
    "state_base_dir": "/var/lib/webhosting-pods",
    "config_dir": "/etc/webhosting-pods",
    "socket_ports": [8080],
    "policy_defaults": {},
    "registry_server": "",
    "userpod_path": "/usr/local/bin/userpod",
    "podman_path": "/usr/bin/podman",
    "systemctl_path": "/usr/bin/systemctl",
    "pod_start_timeout": 300,
    "uid_min": 10000,
    "uid_max": 59999,
    "sftp_group": "webhosting-sftp",
}


def new_hosting_run(model):
    return {
        "files": {
            model["name"]: {"actions": {"x": "created"}, "exists": {model["pod_file"]: True}}
        },
        "pods": {model["name"]: {"changed": True}},
        "users": {model["name"]: {"manager": "inactive", "units": {}}},
    }


@pytest.mark.parametrize(
    ("mutate", "chosen"),
    [
        (lambda r, m: None, True),
        (lambda r, m: r["files"][m["name"]]["exists"].update({m["linger_file"]: True}), False),
        (lambda r, m: r["pods"][m["name"]].update(msg="does not validate"), False),
        (lambda r, m: r["pods"][m["name"]].update(fallback=True), False),
        (lambda r, m: r["users"][m["name"]].update(manager="active"), False),
        (lambda r, m: r["files"][m["name"]]["exists"].pop(m["pod_file"]), False),
        (lambda r, m: r.update(failed_subids={m["name"]: "overlap"}), False),
        # a user of that name that is not as wanted: the user module, one at a time
        (lambda r, m: r.update(passwd={m["name"]: ["x", "1", "1", "", "/", "/bin/sh"]}), False),
    ],
)
def test_only_new_valid_hostings_are_brought_up_together(mutate, chosen):
    h = {"name": "shop", "uid": 10001, "gid": 10001, "domains": ["a.test"], "cron_jobs": []}
    plan = hm.plan([h], SETTINGS_KEYS, [])
    model = plan["models"]["shop"]
    run = new_hosting_run(model)
    mutate(run, model)
    items = hc.bringup_items(plan, {"shop": ["x"]}, run)
    assert bool(items) == chosen
    if chosen:
        (one,) = items
        assert one["system_units"] == ["webhosting-trigger@shop.path", "webhosting-keys@shop.path"]
        assert one["units"] == ["webhosting-pod-update.timer"]
