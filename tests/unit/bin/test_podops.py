"""bin/podops: the pure helpers, the tenant-tree file handling (real files, symlinks and
FIFOs in tmp_path) and the restart verb refusing an invalid pod file with the real userpod."""

import datetime
import importlib.machinery
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from podspec_helpers import PROVIDER_POD, USERPOD, make_provider_hosting

PODOPS = Path(__file__).resolve().parents[3] / "bin" / "podops"


def load_podops():
    loader = importlib.machinery.SourceFileLoader("podops", str(PODOPS))
    spec = importlib.util.spec_from_loader("podops", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


podops = load_podops()

RENDERED = """\
apiVersion: v1
kind: Pod
metadata: {name: shop}
spec:
  initContainers:
  - {name: init, image: "r.example:5000/shop/init:1"}
  containers:
  - {name: web, image: "r.example:5000/shop/web:2"}
  - {name: db, image: "r.example:5000/shop/db:1"}
  - {name: web2, image: "r.example:5000/shop/web:2"}
"""


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------
def test_pod_images_in_order_each_once():
    assert podops.pod_images(RENDERED) == [
        "r.example:5000/shop/init:1",
        "r.example:5000/shop/web:2",
        "r.example:5000/shop/db:1",
    ]


@pytest.mark.parametrize("text", ["", "{}", "spec: {}", "spec: {containers: []}"])
def test_pod_images_of_empty_pods(text):
    assert podops.pod_images(text) == []


@pytest.mark.parametrize(
    ("containers", "pulled", "changed"),
    [
        # same ID: nothing
        ([{"Image": "a:1", "ImageID": "x"}], {"a:1": "x"}, []),
        # new ID behind the tag
        ([{"Image": "a:1", "ImageID": "x"}], {"a:1": "y"}, ["a:1"]),
        # infra container and images of no container are ignored
        ([{"Image": "pause", "ImageID": "p"}], {"a:1": "y"}, []),
        # two containers of one image, one already on the new ID
        (
            [{"Image": "a:1", "ImageID": "x"}, {"Image": "a:1", "ImageID": "y"}],
            {"a:1": "y"},
            ["a:1"],
        ),
        ([], {}, []),
    ],
)
def test_changed_images(containers, pulled, changed):
    assert podops.changed_images(containers, pulled) == changed


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (["/bin/echo", "a b", "$HOME;"], ["/bin/echo", "a b", "$HOME;"]),
        ("echo $HOME", ["/bin/sh", "-c", "echo $HOME"]),
    ],
)
def test_cron_argv(command, argv):
    job = {"container": "db", "command": command}
    assert podops.cron_argv("/usr/bin/podman", "shop", job) == [
        "/usr/bin/podman",
        "exec",
        "shop-db",
        *argv,
    ]


@pytest.mark.parametrize("command", [[], [1, 2], ["ok", None]])
def test_cron_argv_refuses_bad_commands(command):
    with pytest.raises(ValueError):
        podops.cron_argv("podman", "shop", {"container": "db", "command": command})


@given(st.text())
def test_format_lines_one_clean_line_per_input_line(text):
    out = podops.format_lines(text)
    lines = out.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == max(1, len(text.splitlines()))
    for line in lines:
        assert all(c.isprintable() or c == "\t" for c in line)
        assert len(line) <= podops.MAX_LOG_LINE + 21


# ---------------------------------------------------------------------------------------------
# Files a tenant controls
# ---------------------------------------------------------------------------------------------
def test_log_appends_to_a_regular_file(tmp_path):
    log = podops.Log(str(tmp_path), "x.log")
    log.write("one")
    log.write("two\nthree")
    lines = (tmp_path / "x.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "three"]
    assert stat.S_IMODE((tmp_path / "x.log").stat().st_mode) & 0o007 == 0


def test_log_does_not_follow_a_symlink(tmp_path, capsys):
    target = tmp_path / "target"
    target.write_text("precious\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "x.log").symlink_to(target)
    podops.Log(str(tmp_path / "logs"), "x.log").write("message")
    assert target.read_text() == "precious\n"
    assert "message" in capsys.readouterr().err


def test_log_does_not_block_on_a_fifo(tmp_path, capsys):
    os.mkfifo(tmp_path / "x.log")
    podops.Log(str(tmp_path), "x.log").write("message")  # returns at once (ENXIO)
    assert "message" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["file", "symlink", "dangling", "fifo", "directory"])
def test_remove_trigger_removes_whatever_it_is_and_follows_nothing(tmp_path, kind):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    trigger = tmp_path / "pod_restart.run"
    if kind == "file":
        trigger.write_text("")
    elif kind == "symlink":
        trigger.symlink_to(target)
    elif kind == "dangling":
        trigger.symlink_to(tmp_path / "nothing")
    elif kind == "fifo":
        os.mkfifo(trigger)
    else:
        trigger.mkdir()
        (trigger / "inner").symlink_to(target / "keep")
    assert podops.remove_trigger(str(trigger)) is True
    assert not os.path.lexists(trigger)
    assert (target / "keep").read_text() == "x"
    assert podops.remove_trigger(str(trigger)) is False


@pytest.mark.parametrize("locked", ["folder", "trigger-directory"])
def test_a_trigger_the_tenant_locked_in_is_still_removed(locked):
    """The tenant takes their own write permission away (chmod 0500) from the trigger's
    folder, or from a trigger that is a directory: podops, running as that tenant, gives it
    back and removes the trigger (else the path unit would fire for ever). Run as an
    unprivileged uid (root ignores permissions), in a folder that uid can reach."""
    tmp_path = Path(tempfile.mkdtemp(prefix="podops-lock-"))
    os.chmod(tmp_path, 0o755)
    folder = tmp_path / "pod_restart"
    folder.mkdir()
    trigger = folder / "pod_restart.run"
    if locked == "folder":
        trigger.write_text("")
        locked_dir = folder
    else:
        (trigger / "deep").mkdir(parents=True)
        (trigger / "deep" / "f").write_text("x")
        locked_dir = trigger / "deep"
    uid = os.getuid() if os.getuid() != 0 else 65534
    for path in [tmp_path, folder, *folder.rglob("*")]:
        if os.getuid() == 0:
            os.lchown(path, uid, uid)
    os.chmod(locked_dir, 0o500)
    if locked != "folder":
        os.chmod(trigger, 0o500)
    pid = os.fork()
    if pid == 0:  # the child: the tenant
        try:
            if os.getuid() == 0:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            os._exit(0 if podops.remove_trigger(str(trigger)) else 3)
        except BaseException:  # noqa: BLE001 - any failure is the test's answer
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert not os.path.lexists(trigger)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(tmp_path)], check=False)
        shutil.rmtree(tmp_path)


# ---------------------------------------------------------------------------------------------
# The restart verb with the real userpod
# ---------------------------------------------------------------------------------------------
def make_config(tmp_path, pod_text):
    base = tmp_path / "mycontainertest"
    policy = tmp_path / "system.yaml"
    policy.write_text(make_provider_hosting(base))
    pod = tmp_path / "pod.yaml"
    pod.write_text(pod_text)
    (tmp_path / "logs").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "trigger").write_text("")
    config = {
        "hosting": "shop",
        "pod": "shop",
        "unit": "webhosting-pod.service",
        "trigger": str(tmp_path / "trigger"),
        "log_dir": str(tmp_path / "logs"),
        "state_dir": str(tmp_path / "state"),
        "pod_file": str(pod),
        "pod_file_shown": "pod.yaml",
        "policy_file": str(policy),
        "rendered_file": str(tmp_path / "state" / "pod.yaml"),
        "tenant_auth_file": str(tmp_path / "auth-shop-registry.yaml"),
        "tenant_auth_shown": "private/container-config/auth-shop-registry.yaml",
        "provider_auth_file": str(tmp_path / "provider-auth.json"),
        "auth_file": str(tmp_path / "state" / "auth.json"),
        # runs the userpod of this checkout; podman and systemctl must never be reached
        "userpod": str(USERPOD),
        "podman": str(tmp_path / "no-podman"),
        "systemctl": str(tmp_path / "no-systemctl"),
        "timeout": 60,
    }
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(config))
    return path


def test_restart_refuses_an_invalid_pod_and_tells_the_tenant(tmp_path):
    if not os.access(USERPOD, os.X_OK) or sys.executable is None:
        pytest.skip("bin/userpod is not executable")
    config = make_config(
        tmp_path, PROVIDER_POD.replace("spec:\n", "spec:\n  hostNetwork: true\n", 1)
    )
    assert podops.main(["restart", str(config)]) == podops.EXIT_OK
    assert not (tmp_path / "trigger").exists()
    log = (tmp_path / "logs" / podops.RESTART_LOG).read_text()
    assert "NOT restarted" in log and "spec.hostNetwork" in log
    assert not (tmp_path / "state" / "pod.next.yaml").exists()


def test_restart_fails_when_podman_is_missing_after_a_valid_render(tmp_path):
    config = make_config(tmp_path, PROVIDER_POD)
    # Valid: rendered, then the pull fails (no podman): logged, not restarted.
    assert podops.main(["restart", str(config)]) == podops.EXIT_OK
    log = (tmp_path / "logs" / podops.RESTART_LOG).read_text()
    assert "cannot pull" in log and "NOT restarted" in log
    assert (tmp_path / "state" / "pod.next.yaml").exists()


def test_restart_refuses_a_broken_registry_file_and_keeps_the_pod(tmp_path):
    config = make_config(tmp_path, PROVIDER_POD)
    (tmp_path / "auth-shop-registry.yaml").write_text("r.io: {user: me}\n")
    assert podops.main(["restart", str(config)]) == podops.EXIT_OK
    log = (tmp_path / "logs" / podops.RESTART_LOG).read_text()
    assert "NOT restarted: private/container-config/auth-shop-registry.yaml cannot be used" in log
    assert '["r.io"].password: required' in log
    # nothing was rendered or pulled
    assert not (tmp_path / "state" / "pod.next.yaml").exists()
    assert "cannot pull" not in log


def test_restart_merges_the_registry_logins_before_the_pull(tmp_path):
    config = make_config(tmp_path, PROVIDER_POD)
    (tmp_path / "auth-shop-registry.yaml").write_text("r.io: {user: me, password: pw}\n")
    (tmp_path / "provider-auth.json").write_text('{"auths": {"p.io": {"auth": "eA=="}}}')
    podops.main(["restart", str(config)])
    merged = json.loads((tmp_path / "state" / "auth.json").read_text())
    assert sorted(merged["auths"]) == ["p.io", "r.io"]


def test_cron_with_unknown_job_is_a_usage_error(tmp_path):
    config = make_config(tmp_path, PROVIDER_POD)
    assert podops.main(["cron", str(config), "nope"]) == podops.EXIT_USAGE


def test_unreadable_config_is_a_usage_error(tmp_path):
    assert podops.main(["update", str(tmp_path / "missing.json")]) == podops.EXIT_USAGE


# ---------------------------------------------------------------------------------------------
# The bound of a hosting's container storage (real du on a real directory; the podman shim
# only leaves out podman's namespace, which needs a hosting user)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def storage(tmp_path):
    shim = tmp_path / "podman"
    calls = tmp_path / "calls"
    shim.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'if [ "$1" = unshare ]; then shift; exec "$@"; fi\n'
        "exit 0\n"
    )
    shim.chmod(0o755)
    directory = tmp_path / "storage"
    (directory / "overlay").mkdir(parents=True)
    (directory / "overlay" / "layer").write_bytes(b"x" * (2 * 1024 * 1024))
    config = {"podman": str(shim), "storage_dir": str(directory)}
    return config, calls


@pytest.mark.parametrize(
    ("limit", "over"), [(1024 * 1024, True), (64 * 1024 * 1024, False), (0, False)]
)
def test_storage_excess_measures_the_hostings_storage(storage, tmp_path, limit, over):
    config, _calls = storage
    log = podops.Log(str(tmp_path), "pod_restart.log")
    excess = podops.storage_excess(dict(config, storage_max_bytes=limit), log)
    if over:
        assert excess.startswith("the images and containers take 2.0 MiB, more than the 1.0 MiB")
    else:
        assert excess is None


def test_an_oversized_pull_is_refused_and_its_images_removed(storage, tmp_path):
    config, calls = storage
    log = podops.Log(str(tmp_path), "pod_restart.log")
    config = dict(config, storage_max_bytes=1024 * 1024)
    assert podops.refuse_oversized(config, log, "the pod was NOT restarted")
    assert "image prune --all --force" in calls.read_text()
    text = (tmp_path / "pod_restart.log").read_text()
    assert "the pod was NOT restarted: the images and containers take 2.0 MiB" in text
    assert not podops.refuse_oversized(dict(config, storage_max_bytes=0), log, "x")


# ---------------------------------------------------------------------------------------------
# status (the admin's view; systemctl is a stand-in script, everything else real files)
# ---------------------------------------------------------------------------------------------
FAKE_SYSTEMCTL = """#!/bin/sh
ok='ActiveState=active\\nSubState=running\\nResult=success\\nNRestarts=0\\nExecMainStatus=0'
bad='ActiveState=failed\\nSubState=failed\\nResult=exit-code\\nNRestarts=0\\nExecMainStatus=4'
case "$*" in
  *--machine=down@*) exit 1 ;;
  *--machine=shop@*) printf "$ok\\n" ;;
  *) printf "$bad\\n" ;;
esac
"""


def status_config(tmp_path, name):
    root = tmp_path / "srv" / name
    (root / "logs").mkdir(parents=True)
    (root / "www").mkdir()
    (root / "www" / "index.html").write_bytes(b"x" * 5000)
    state = tmp_path / "state" / name
    state.mkdir(parents=True)
    systemctl = tmp_path / "systemctl"
    if not systemctl.exists():
        systemctl.write_text(FAKE_SYSTEMCTL)
        systemctl.chmod(0o755)
    config = {
        "hosting": name,
        "pod": name,
        "unit": "webhosting-pod.service",
        "trigger": str(root / "scripts" / "pod_restart" / "pod_restart.run"),
        "log_dir": str(root / "logs"),
        "state_dir": str(state),
        "pod_file": str(root / "pod.yaml"),
        "policy_file": str(tmp_path / "system.yaml"),
        "rendered_file": str(state / "pod.yaml"),
        "userpod": "userpod",
        "podman": "podman",
        "systemctl": str(systemctl),
        "root": str(root),
        "storage_dir": str(state),
        "status_file": str(state / "status.json"),
    }
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(config))
    return path, root, state


def test_status_lists_every_hosting_and_fails_when_one_is_down(tmp_path, capsys):
    shop, root, state = status_config(tmp_path, "shop")
    (state / "status.json").write_text(
        json.dumps(
            {"state": "running", "containers": {"shop-web": {"state": "running", "restarts": 2}}}
        )
    )
    (root / "logs" / "pod_restart.log").write_text(
        "2026-12-01T10:00:00Z restart requested\n2026-12-01T10:00:01Z pod restarted (trigger)\n"
    )
    blog, blog_root, _ = status_config(tmp_path, "blog")
    (blog_root / "logs" / "pod_update.log").symlink_to("/etc/shadow")  # never followed
    down, _, _ = status_config(tmp_path, "down")
    assert podops.main(["status", str(shop)]) == podops.EXIT_OK
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["HOSTING", "UNIT", "CONTAINERS"]
    assert table[1].split()[:3] == ["shop", "active", "web:running(2)"]
    assert "pod restarted (trigger)" in table[1]
    assert podops.main(["status", "--json", str(shop), str(blog), str(down)]) == podops.EXIT_FAILED
    data = {h["hosting"]: h for h in json.loads(capsys.readouterr().out)["hostings"]}
    assert data["shop"]["last_trigger"] == {
        "time": "2026-12-01T10:00:01Z",
        "message": "pod restarted (trigger)",
    }
    assert data["shop"]["disk_bytes"] >= 5000
    assert data["blog"]["unit"]["ActiveState"] == "failed"
    assert data["blog"]["unit"]["ExecMainStatus"] == "4"
    assert data["blog"]["last_update"] is None and data["blog"]["pod"] is None
    assert data["down"]["unit"]["ActiveState"].startswith("unknown")


def test_status_reads_a_real_certificate(tmp_path):
    key = tmp_path / "key.pem"
    cert = tmp_path / "cert.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "30",
            "-subj",
            "/CN=shop.test",
        ],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip("no openssl here")
    servers = tmp_path / "servers"
    servers.mkdir()
    (servers / "shop.conf").write_text(
        "server {\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n}\n" % (cert, key)
    )
    expiry = podops.certificate_expiry("shop", str(servers))
    left = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ") - datetime.datetime.utcnow()
    assert 29 <= left.days <= 30
    assert podops.certificate_expiry("other", str(servers)) is None


def test_status_marks_hostings_the_inventory_left_out_and_escapes_tenant_text(tmp_path, capsys):
    """A hosting whose item was dropped from the inventory shows as such (inventory.json of
    the last converge); a tenant's text never reaches the admin's terminal raw."""
    shop, root, state = status_config(tmp_path, "shop")
    gone, _, _ = status_config(tmp_path, "gone")
    (state / "status.json").write_text(
        json.dumps({"state": "running", "containers": {"shop-web": {"state": "running"}}})
    )
    # the tenant cannot write this log, but podops' own lines quote what they were given
    (root / "logs" / "pod_restart.log").write_text(
        "2026-12-01T10:00:00Z restart \x1b]0;owned\x07\x1b[2J done\n"
    )
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "inventory.json").write_text(json.dumps({"hostings": ["shop"]}))
    argv = ["status", "--no-disk", "--config-dir", str(config_dir), str(shop), str(gone)]
    podops.main(argv)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "restart \\x1b]0;owned\\x07" in out
    lines = out.splitlines()
    assert lines[1].startswith("shop ") and "not in the inventory" not in lines[1]
    assert lines[2].startswith("gone (not in the inventory) ")
    podops.main(argv[:1] + ["--json"] + argv[1:])
    data = {h["hosting"]: h for h in json.loads(capsys.readouterr().out)["hostings"]}
    assert data["shop"]["in_inventory"] is True and data["gone"]["in_inventory"] is False
    (config_dir / "inventory.json").unlink()
    podops.main(argv[:1] + ["--json"] + argv[1:])
    data = {h["hosting"]: h for h in json.loads(capsys.readouterr().out)["hostings"]}
    assert data["gone"]["in_inventory"] is None  # no list: unknown, not an orphan
