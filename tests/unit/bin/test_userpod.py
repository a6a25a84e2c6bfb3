"""bin/userpod as a tenant runs it: a subprocess, exit codes, stdout and stderr.

start/stop/status run against a fake ``podman`` (a Python script first on PATH) that records
its argv and, for ``podman unshare ...``, binds the unix socket and waits like the real
forwarder."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fake_podman as fake_podman_bin
import pod_policy
import pytest
from podspec_helpers import (
    PROVIDER_POD,
    PROVIDER_WARNINGS,
    USERPOD,
    make_provider_hosting,
)

EXIT_CODES_HELP = "exit codes:"


def userpod(*args, env=None, cwd=None, stdin=None):
    return subprocess.run(
        [sys.executable, str(USERPOD), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def hosting(tmp_path):
    """The provider's example in tmp_path: (base, pod file, policy file)."""
    base = tmp_path / "mycontainertest"
    policy_file = tmp_path / "system.yaml"
    policy_file.write_text(make_provider_hosting(base))
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(PROVIDER_POD)
    return base, pod_file, policy_file


def no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


# ---------------------------------------------------------------------------------------------
# parse and render
# ---------------------------------------------------------------------------------------------
def test_parse_provider_example(hosting):
    base, pod_file, policy_file = hosting
    result = userpod("parse", pod_file, policy_file)
    assert result.returncode == 0
    assert result.stdout == textwrap.dedent(
        """\
        pod mycontainertest: valid
          container mywebserver: registry.git.autistici.org/ai3/docker/static-content:latest
          socket port 8080: {base}/tmp/run/8080
          published ports: none
          warnings: 2
        """
    ).format(base=base)
    assert result.stderr == "".join("warning: %s\n" % line for line in PROVIDER_WARNINGS)


def test_render_provider_example(hosting):
    base, pod_file, policy_file = hosting
    result = userpod("render", pod_file, policy_file)
    assert result.returncode == 0
    expected = pod_policy.dump_pod(pod_policy.render_pod(PROVIDER_POD, policy_file.read_text()).pod)
    assert result.stdout == expected
    assert 'path: "%s/data/app"' % base in result.stdout
    assert "hostPort" not in result.stdout
    assert "readOnlyRootFilesystem: true" in result.stdout
    assert result.stderr == "".join("warning: %s\n" % line for line in PROVIDER_WARNINGS)


def test_render_output_is_written_atomically(hosting, tmp_path):
    _base, pod_file, policy_file = hosting
    output = tmp_path / "out" / "pod.rendered.yaml"
    output.parent.mkdir()
    result = userpod("render", "--output", output, pod_file, policy_file)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.endswith("userpod: wrote %s\n" % output)
    assert output.read_text() == userpod("render", pod_file, policy_file).stdout
    assert os.listdir(output.parent) == ["pod.rendered.yaml"]
    assert stat.S_IMODE(output.stat().st_mode) == 0o666 & ~_umask()


def test_render_output_keeps_the_mode_of_the_file_it_replaces(hosting, tmp_path):
    _base, pod_file, policy_file = hosting
    output = tmp_path / "pod.rendered.yaml"
    output.write_text("old\n")
    output.chmod(0o600)
    assert userpod("render", "-o", output, pod_file, policy_file).returncode == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_text().startswith('apiVersion: "v1"\n')


def test_render_output_untouched_when_the_pod_is_invalid(hosting, tmp_path):
    _base, pod_file, policy_file = hosting
    output = tmp_path / "out" / "pod.rendered.yaml"
    output.parent.mkdir()
    output.write_text("last good render\n")
    before = output.stat()
    pod_file.write_text(PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0"))
    result = userpod("render", "--output", output, pod_file, policy_file)
    assert result.returncode == 1
    assert output.read_text() == "last good render\n"
    assert output.stat().st_ino == before.st_ino and output.stat().st_mtime == before.st_mtime
    assert os.listdir(output.parent) == ["pod.rendered.yaml"]
    assert result.stdout == ""


def test_render_output_into_a_missing_directory_is_a_runtime_failure(hosting, tmp_path):
    _base, pod_file, policy_file = hosting
    result = userpod("render", "-o", tmp_path / "nowhere" / "x.yaml", pod_file, policy_file)
    assert result.returncode == 3
    assert result.stderr.endswith(
        "userpod: %s: cannot write: No such file or directory\n" % (tmp_path / "nowhere/x.yaml")
    )
    no_traceback(result)


def test_invalid_pod_reports_every_error(hosting):
    _base, pod_file, policy_file = hosting
    pod_file.write_text(
        PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0").replace("/data/app", "/data/x")
    )
    result = userpod("parse", pod_file, policy_file)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: spec.volumes[0].hostPath.path: /data/x does not exist in the hosting\n"
        "error: spec.containers[0].securityContext.runAsUser: 0 (root) is not allowed\n"
        "warning: " + PROVIDER_WARNINGS[0] + "\n"
        "userpod: %s is invalid: 2 errors\n" % pod_file
    )


def test_strict_turns_warnings_into_errors(hosting):
    _base, pod_file, policy_file = hosting
    result = userpod("parse", "--strict", pod_file, policy_file)
    assert result.returncode == 1
    assert result.stderr == "".join("error: %s\n" % line for line in PROVIDER_WARNINGS) + (
        "userpod: %s is invalid: 2 errors\n" % pod_file
    )


def test_invalid_policy(hosting):
    _base, pod_file, policy_file = hosting
    policy_file.write_text("name: Bad Name\nvolumes_base_dir: relative\nrogue: 1\n")
    result = userpod("render", pod_file, policy_file)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: policy.rogue: unknown key",
        'error: policy.name: "Bad Name" is not a valid name (lowercase letters, digits and '
        "'-', starting and ending with a letter or digit, at most 63 characters)",
        'error: policy.volumes_base_dir: "relative" must be an absolute path',
        "userpod: %s is invalid: 3 errors" % policy_file,
    ]


JUNK = [
    ("binary", bytes(range(256)) * 4, "error: document: not valid UTF-8 text (byte 128)"),
    (
        "elf",
        b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64,
        "error: document: contains a NUL character; is this a text file?",
    ),
    ("empty", b"", "error: document: is empty"),
    ("huge", b"#" * (300 * 1024), "error: document: larger than 262144 bytes"),
    (
        "bomb",
        (
            b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
            + b"".join(
                b"%c: &%c [%s]\n" % (98 + i, 98 + i, b",".join([b"*%c" % (97 + i)] * 10))
                for i in range(8)
            )
        ),
        "error: document: line 5, column 11: more than 20000 nodes once aliases are expanded; "
        "YAML bombs are refused",
    ),
    (
        "python-tag",
        b"kind: !!python/object/apply:os.system ['id']\n",
        "error: kind: unsupported YAML tag !!python/object/apply:os.system (line 1); only plain "
        "YAML data is accepted",
    ),
    ("list", b"- a\n", "error: document: must be a mapping (a Pod), got a list"),
]


@pytest.mark.parametrize("data, first_error", [j[1:] for j in JUNK], ids=[j[0] for j in JUNK])
def test_junk_pod_files(hosting, data, first_error):
    _base, pod_file, policy_file = hosting
    pod_file.write_bytes(data)
    started = time.monotonic()
    result = userpod("parse", pod_file, policy_file)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == first_error
    assert result.stdout == ""
    no_traceback(result)


@pytest.mark.parametrize("which", ["pod", "policy"])
@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "No such file or directory"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["missing", "directory"],
)
def test_unreadable_inputs(hosting, tmp_path, which, make, problem):
    _base, pod_file, policy_file = hosting
    target = tmp_path / "weird"
    make(target)
    args = (target, policy_file) if which == "pod" else (pod_file, target)
    what = "pod file" if which == "pod" else "system policy"
    result = userpod("render", *args)
    assert result.returncode == 1
    assert result.stderr == "userpod: %s: cannot read the %s: %s\n" % (target, what, problem)
    no_traceback(result)


def test_dev_null_is_an_empty_pod(hosting):
    _base, _pod_file, policy_file = hosting
    result = userpod("parse", "/dev/null", policy_file)
    assert (result.returncode, result.stderr) == (
        1,
        "error: document: is empty\nuserpod: /dev/null is invalid: 1 error\n",
    )


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frobnicate",),
        ("parse",),
        ("parse", "pod.yaml"),
        ("render", "--bogus", "a", "b"),
        ("stop", "--strict", "a", "b"),
    ],
    ids=["nothing", "unknown-verb", "no-files", "no-policy", "unknown-option", "stop-strict"],
)
def test_usage_errors_exit_2(args):
    result = userpod(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: userpod")
    assert result.stdout == ""
    no_traceback(result)


@pytest.mark.parametrize("verb", [None, "parse", "render", "start", "stop", "status", "auth"])
def test_help_documents_the_exit_codes(verb):
    result = userpod(*([verb] if verb else []), "--help")
    assert result.returncode == 0
    assert EXIT_CODES_HELP in result.stdout
    assert "3  runtime failure" in result.stdout


def test_engine_found_next_to_an_installed_copy(hosting, tmp_path):
    """As on a pod host: bin/userpod copied to /usr/local/bin, the engine elsewhere."""
    _base, pod_file, policy_file = hosting
    copy = tmp_path / "bin" / "userpod"
    copy.parent.mkdir()
    copy.write_bytes(USERPOD.read_bytes())
    moved = subprocess.run(
        [sys.executable, str(copy), "parse", str(pod_file), str(policy_file)],
        capture_output=True,
        text=True,
    )
    # The copy finds neither ../plugins/module_utils nor /usr/local/lib/webhosting-pods here
    # (unless the host has it installed): a clear message and exit 3, no traceback.
    if os.path.exists("/usr/local/lib/webhosting-pods/pod_policy/__init__.py"):
        assert moved.returncode == 0
    else:
        assert moved.returncode == 3
        assert moved.stderr.startswith(
            "userpod: cannot load the policy engine, the package pod_policy ("
        )
    no_traceback(moved)


# ---------------------------------------------------------------------------------------------
# auth: the tenant's registry logins merged with the provider's
# ---------------------------------------------------------------------------------------------
def test_auth_merges_the_tenants_logins_with_the_providers(tmp_path):
    tenant = tmp_path / "auth-shop-registry.yaml"
    tenant.write_text(
        "r.io:\n  user: me\n  password: mine\nlocalhost:5000:\n  user: u\n  password: p\n"
    )
    provider = tmp_path / "provider.json"
    provider.write_text(json.dumps({"auths": {"r.io": {"auth": "cHJvdmlkZXI="}}}))
    out, log = tmp_path / "auth.json", tmp_path / "pod_start.log"
    result = userpod(
        "auth", tenant, "--provider", provider, "--output", out, "--report", log, "--shown", "f"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "registry logins: localhost:5000, r.io\n"
    assert json.loads(out.read_text())["auths"] == {
        "localhost:5000": {"auth": "dTpw"},
        "r.io": {"auth": "cHJvdmlkZXI="},
    }
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "r.io: your provider keeps a login" in log.read_text()


def test_auth_keeps_the_last_valid_logins_on_a_broken_file(tmp_path):
    tenant = tmp_path / "auth-shop-registry.yaml"
    tenant.write_text("r.io: {user: me, password: mine}\n")
    out, log = tmp_path / "auth.json", tmp_path / "pod_start.log"
    assert userpod("auth", tenant, "--output", out).returncode == 0
    good = out.read_text()
    tenant.write_text("r.io: {user: me, pasword: mine}\n")
    result = userpod(
        "auth", tenant, "--output", out, "--report", log, "--shown", "auth-shop-registry.yaml"
    )
    assert result.returncode == 1
    assert 'auth-shop-registry.yaml: ["r.io"].pasword: unknown field' in result.stderr
    assert out.read_text() == good
    text = log.read_text()
    assert "auth-shop-registry.yaml was not applied: the registry logins stay" in text
    assert '["r.io"].password: required' in text
    no_traceback(result)


def test_auth_first_run_on_a_broken_file_gets_the_providers_logins(tmp_path):
    tenant = tmp_path / "t.yaml"
    tenant.write_text("- not a mapping\n")
    provider = tmp_path / "p.json"
    provider.write_text(json.dumps({"auths": {"r.io": {"auth": "eA=="}}}))
    out = tmp_path / "auth.json"
    assert userpod("auth", tenant, "--provider", provider, "--output", out).returncode == 1
    assert json.loads(out.read_text()) == {"auths": {"r.io": {"auth": "eA=="}}}


def test_auth_without_a_tenant_file_and_links_and_fifos(tmp_path):
    out = tmp_path / "auth.json"
    result = userpod("auth", tmp_path / "missing.yaml", "--output", out)
    assert result.returncode == 0 and json.loads(out.read_text()) == {"auths": {}}
    secret = tmp_path / "secret.yaml"
    secret.write_text("r.io: {user: root, password: only}\n")
    (tmp_path / "link.yaml").symlink_to(secret)
    result = userpod("auth", tmp_path / "link.yaml")
    assert result.returncode == 1 and "is a symlink" in result.stderr
    os.mkfifo(tmp_path / "fifo.yaml")
    result = userpod("auth", tmp_path / "fifo.yaml")
    assert result.returncode == 1 and "not a regular file" in result.stderr


def test_broken_pipe_is_not_a_traceback(hosting):
    _base, pod_file, policy_file = hosting
    process = subprocess.Popen(
        [sys.executable, str(USERPOD), "render", str(pod_file), str(policy_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    _, stderr = process.communicate(timeout=30)
    assert b"Traceback" not in stderr


# ---------------------------------------------------------------------------------------------
# start, stop, status (fake podman)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def fake_podman(tmp_path):
    directory = tmp_path / "fakebin"
    state = tmp_path / "podman-state"
    env = dict(os.environ, PATH="%s:%s" % (directory, os.environ["PATH"]))
    env.update(fake_podman_bin.install(directory, state))
    started = []
    yield env, state, started
    fake_podman_bin.kill_forwarders(started)  # only the forwarders these tests started


def calls(state):
    path = state / "calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def forwarder_pidfile(base):
    return base / "pod.socket-8080.pid"


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_start_status_stop(hosting, fake_podman):
    base, pod_file, policy_file = hosting
    env, state, started = fake_podman
    started.append(forwarder_pidfile(base))

    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 0, result.stderr
    rendered = base / "tmp" / "mycontainertest.pod.yaml"
    assert rendered.read_text() == userpod("render", pod_file, policy_file).stdout
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    pid = int(forwarder_pidfile(base).read_text())
    sock = base / "tmp" / "run" / "8080"
    assert result.stdout == (
        "pod mycontainertest: started\n  socket port 8080: %s (forwarder pid %d)\n" % (sock, pid)
    )
    assert (base / "pod.pid").read_text() == "4243\n"
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert alive(pid)
    recorded = calls(state)
    assert recorded[0] == ["kube", "play", "--replace", str(rendered)]
    assert recorded[1] == ["pod", "inspect", "--format", "{{.InfraContainerID}}", "mycontainertest"]
    assert recorded[2][:2] == ["container", "inspect"]
    # the forwarder: the same argv as a pod host's socket unit (userpod forward)
    forwarder = recorded[3]
    assert forwarder[:6] == [
        "nsenter",
        "--target=4242",
        "--user",
        "--net",
        "--preserve-credentials",
        "--",
    ]
    assert forwarder[6].endswith("systemd-socket-activate")
    assert forwarder[7:9] == ["-l", str(sock)]
    assert forwarder[9].endswith("systemd-socket-proxyd")
    assert forwarder[10] == "127.0.0.1:8080"
    assert len(forwarder) == 11

    status = userpod("status", pod_file, policy_file, env=env)
    assert (status.returncode, status.stdout) == (
        0,
        "pod mycontainertest: Running\n  socket port 8080: %s (forwarder pid %d)\n" % (sock, pid),
    )

    stopped = userpod("stop", pod_file, policy_file, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "pod mycontainertest: stopped\n"
    assert calls(state)[-1] == ["pod", "rm", "--force", "--ignore", "mycontainertest"]
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert not forwarder_pidfile(base).exists()
    assert not sock.exists()
    assert not (base / "pod.pid").exists()

    after = userpod("status", pod_file, policy_file, env=env)
    assert (after.returncode, after.stdout) == (
        3,
        "pod mycontainertest: absent\n  socket port 8080: %s (no forwarder)\n" % sock,
    )


def test_stop_never_kills_a_process_that_is_not_our_forwarder(hosting, fake_podman):
    base, pod_file, policy_file = hosting
    env, _state, _started = fake_podman
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        forwarder_pidfile(base).write_text("%d\n" % bystander.pid)
        result = userpod("stop", pod_file, policy_file, env=env)
        assert result.returncode == 0
        assert bystander.poll() is None
        assert not forwarder_pidfile(base).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_works_when_the_pod_file_is_broken(hosting, fake_podman):
    _base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    pod_file.write_text("this: [is broken\n")
    result = userpod("stop", pod_file, policy_file, env=env)
    assert result.returncode == 0
    assert calls(state) == [["pod", "rm", "--force", "--ignore", "mycontainertest"]]


def test_start_refuses_an_invalid_pod_before_podman(hosting, fake_podman):
    _base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    pod_file.write_text(PROVIDER_POD.replace("runAsUser: 1000", "runAsUser: 0"))
    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 1
    assert calls(state) == []


def test_start_refuses_a_symlink_at_the_socket_path(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, _state, started = fake_podman
    started.append(forwarder_pidfile(base))
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.symlink(victim, base / "tmp" / "run" / "8080")
    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 3
    assert result.stderr.endswith(
        "userpod: %s is a symlink; refusing to touch it\n" % (base / "tmp/run/8080")
    )
    assert victim.read_text() == "keep me\n"
    no_traceback(result)


def test_start_with_a_failing_podman(hosting, fake_podman):
    _base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    (state / "fail-play").touch()
    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 3
    assert result.stderr.endswith(
        "userpod: podman kube play failed (exit 125): Error: image not known\n"
    )


def test_start_without_podman(hosting, tmp_path):
    _base, pod_file, policy_file = hosting
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 3
    assert "userpod: podman kube play: cannot run podman: No such file or directory" in (
        result.stderr
    )
    no_traceback(result)


def test_start_passes_the_policy_network(hosting, fake_podman):
    base, pod_file, policy_file = hosting
    env, state, started = fake_podman
    started.append(forwarder_pidfile(base))
    policy_file.write_text(policy_file.read_text() + "network: none\n")
    result = userpod("start", pod_file, policy_file, env=env)
    assert result.returncode == 0, result.stderr
    assert calls(state)[0][:5] == ["kube", "play", "--replace", "--network", "none"]
    assert userpod("stop", pod_file, policy_file, env=env).returncode == 0


def _umask():
    value = os.umask(0)
    os.umask(value)
    return value


def test_play_is_the_same_runner_as_start(hosting, fake_podman):
    """`userpod play` runs podman with the argv `userpod start` uses, plus the log file
    (the pod unit's play --service runs the same argv, then supervises); the policy's
    network applies."""
    base, pod_file, policy_file = hosting
    env, state, started = fake_podman
    started.append(forwarder_pidfile(base))
    policy_file.write_text(policy_file.read_text() + "network: none\n")
    assert userpod("start", pod_file, policy_file, env=env).returncode == 0
    by_start = calls(state)[0]
    assert userpod("stop", pod_file, policy_file, env=env).returncode == 0
    rendered = by_start[-1]
    log = str(base / "logs" / "pod.log")
    Path(log).parent.mkdir(exist_ok=True)
    Path(log).write_text("")  # root's, as the hosting role makes it
    played = userpod("play", "--log", log, rendered, policy_file, env=env)
    assert played.returncode == 0, played.stderr
    by_play = calls(state)[-1]
    assert by_play == [
        "kube",
        "play",
        "--replace",
        "--log-driver=k8s-file",
        "--log-opt=path=%s" % log,
        "--network",
        "none",
        rendered,
    ]
    assert [a for a in by_play if a not in by_start] == [
        "--log-driver=k8s-file",
        "--log-opt=path=%s" % log,
    ]


@pytest.mark.parametrize("make", ["missing", "tenants", "link", "hard link"])
def test_play_gives_conmon_only_roots_log_file(hosting, fake_podman, tmp_path, make):
    """conmon opens the log following links: a log that is not root's single-named regular
    file is not handed to it (the journal gets the output) and the report says why."""
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    log, other = logs / "pod.log", tmp_path / "elsewhere"
    other.write_text("")
    if make == "tenants":
        log.write_text("")
        os.chown(log, 12345, 12345)
    elif make == "link":
        log.symlink_to(other)
    elif make == "hard link":
        os.link(other, log)
    report = tmp_path / "start.log"
    rendered = tmp_path / "rendered.yaml"
    args = ["play", "--log", log, "--render-from", pod_file, "--report", report]
    played = userpod(*args, rendered, policy_file, env=env)
    assert played.returncode == 0, played.stderr
    assert not any(a.startswith("--log") for a in calls(state)[-1])
    assert "container output is not written to pod.log" in report.read_text()
    assert other.read_text() == ""


def test_forward_is_the_same_runner_as_start(hosting, fake_podman):
    base, pod_file, policy_file = hosting
    env, state, started = fake_podman
    started.append(forwarder_pidfile(base))
    assert userpod("start", pod_file, policy_file, env=env).returncode == 0
    by_start = calls(state)[3]
    assert userpod("stop", pod_file, policy_file, env=env).returncode == 0
    (Path(env["FAKE_PODMAN_STATE"]) / "running").touch()  # the pod runs (systemd started it)
    process = subprocess.Popen(
        [sys.executable, str(USERPOD), "forward", "--connections-max=64", str(policy_file), "8080"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        sock = base / "tmp" / "run" / "8080"
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stat.S_ISSOCK(os.lstat(sock).st_mode)
        by_forward = calls(state)[-1]
        assert by_forward == by_start[:-1] + ["--connections-max=64", by_start[-1]]
        chmod = userpod("forward", "--chmod", policy_file, "8080", env=env)
        assert chmod.returncode == 0, chmod.stderr
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o660
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_forward_refuses_other_ports_and_links(hosting, fake_podman):
    base, _pod_file, policy_file = hosting
    env, state, _started = fake_podman
    other = userpod("forward", policy_file, "9999", env=env)
    assert other.returncode == 1
    assert "port 9999 is not a socket port of hosting mycontainertest (8080)" in other.stderr
    (Path(env["FAKE_PODMAN_STATE"]) / "running").touch()
    (base / "tmp" / "run" / "8080").symlink_to("/etc/passwd")
    linked = userpod("forward", policy_file, "8080", env=env)
    assert linked.returncode == 3
    assert "is a symlink; refusing to touch it" in linked.stderr
    assert os.path.islink(base / "tmp" / "run" / "8080")
    assert not any(call[0] == "nsenter" for call in calls(state))


# ---------------------------------------------------------------------------------------------
# play --render-from: every start renders and checks; a stale rendered pod never runs
# ---------------------------------------------------------------------------------------------
def play_from(tmp_path, pod_file, policy_file, env):
    rendered, last, report = (tmp_path / n for n in ("rendered.yaml", "last.yaml", "start.log"))
    args = ["play", "--render-from", pod_file, "--last-valid", last]
    args += ["--report", report, "--render-shown", "pod.yaml", rendered, policy_file]
    return userpod(*args, env=env), rendered, last, report


def test_play_renders_at_start_and_keeps_the_valid_input(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    played, rendered, last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 0, played.stderr
    assert calls(state)[-1][-1] == str(rendered)
    assert rendered.read_text() == userpod("render", pod_file, policy_file).stdout
    assert last.read_text() == PROVIDER_POD
    assert not report.exists()  # nothing to tell


def test_play_falls_back_to_the_last_valid_input(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 0
    good = (tmp_path / "rendered.yaml").read_text()
    pod_file.write_text(PROVIDER_POD.replace("  containers:", "  hostNetwork: true\n  containers:"))
    (tmp_path / "rendered.yaml").write_text("stale: true\n")
    played, rendered, last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 0, played.stderr
    assert rendered.read_text() == good  # rendered again from the last valid input
    assert last.read_text() == PROVIDER_POD
    log = report.read_text()
    assert "started with the last valid version" in log
    assert "error: spec.hostNetwork" in log


def test_play_falls_back_with_the_env_files_valid_with_the_last_input(
    hosting, fake_podman, tmp_path
):
    """A tenant env file broken after the last good start: the next start (a reboot) runs
    the last valid version with the env file as it was then, kept in the state directory."""
    base, pod_file, policy_file = hosting
    env, _state, _started = fake_podman
    env_file = base / "mycontainertest-mywebserver.env"
    env_file.write_text("TENANT=kept\n")
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 0
    good = (tmp_path / "rendered.yaml").read_text()
    assert "TENANT" in good
    kept = tmp_path / "mycontainertest-mywebserver.env"
    assert kept.read_text() == "TENANT=kept\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    (tmp_path / "stale.env").write_text("OLD=1\n")
    env_file.write_text("TENANT=kept\nbroken line\n")
    played, rendered, _last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 0, played.stderr
    assert rendered.read_text() == good
    log = report.read_text()
    assert "started with the last valid version" in log
    assert "%s:2: expected KEY=VALUE" % env_file in log
    # fixed and started: what is kept follows; a file the tenant removed goes
    env_file.unlink()
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 0
    assert not kept.exists() and not (tmp_path / "stale.env").exists()


def test_play_refuses_when_the_policy_admits_neither(hosting, fake_podman, tmp_path):
    """The symlink swap: the mounted folder becomes a link to /. The tenant's file and its
    last valid version both mount it, so nothing starts, and the stale rendered pod (which
    mounts the link) is not played."""
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 0
    before = len(calls(state))
    app = base / "data" / "app"
    app.rmdir()
    app.symlink_to("/")
    played, rendered, last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 1
    assert len(calls(state)) == before  # podman was not run
    log = report.read_text()
    assert "the pod was NOT started: no valid pod file" in log
    assert "no longer validates either" in log
    no_traceback(played)


def test_play_without_any_valid_input_refuses(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    pod_file.write_text("kind: Pod\n")
    played, rendered, _last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 1
    assert not rendered.exists()
    assert "NOT started" in report.read_text()


def test_play_report_is_never_written_through_a_link(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, _state, _started = fake_podman
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / "start.log").symlink_to(target)
    pod_file.write_text("kind: Pod\n")
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 1
    assert target.read_text() == ""


MEMORY_POD = PROVIDER_POD.replace(
    "    volumeMounts:\n    - mountPath: /var/www\n      name: data-app\n",
    "    volumeMounts:\n    - mountPath: /var/www\n      name: data-app\n"
    "    - mountPath: /cache\n      name: cache\n",
).replace(
    "  volumes:\n",
    "  volumes:\n  - name: cache\n    emptyDir:\n      medium: Memory\n      sizeLimit: 16Mi\n",
)


@pytest.mark.parametrize("verb", ["start", "play"])
def test_in_memory_volumes_are_fresh_tmpfs_volumes_of_their_size(
    hosting, fake_podman, tmp_path, verb
):
    """Before kube play, each in-memory emptyDir is made a new tmpfs volume of its size
    (podman's own emptyDir is on disk in 4.3 and has no size in 5.x)."""
    base, pod_file, policy_file = hosting
    env, state, started = fake_podman
    pod_file.write_text(MEMORY_POD)
    if verb == "start":
        started.append(forwarder_pidfile(base))
        result = userpod("start", pod_file, policy_file, env=env)
    else:
        result = play_from(tmp_path, pod_file, policy_file, env)[0]
    assert result.returncode == 0, result.stderr
    recorded = calls(state)
    play = next(i for i, c in enumerate(recorded) if c[:2] == ["kube", "play"])
    assert recorded[play - 2 : play] == [
        ["volume", "rm", "--force", "mycontainertest-memory-cache"],
        [
            "volume",
            "create",
            "--driver",
            "local",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=nr_blocks=%d,mode=1777,uid=0,gid=0"
            % (16 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")),
            "mycontainertest-memory-cache",
        ],
    ]


def test_an_in_memory_volume_still_in_use_is_kept(hosting, fake_podman, tmp_path):
    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    pod_file.write_text(MEMORY_POD)
    (state / "volume-in-use").touch()
    result = play_from(tmp_path, pod_file, policy_file, env)[0]
    assert result.returncode == 0, result.stderr
    assert "it is kept" in result.stderr
    assert not [c for c in calls(state) if c[:2] == ["volume", "create"]]


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_play_never_follows_or_blocks_on_the_tenants_pod_file(hosting, fake_podman, tmp_path, kind):
    """The pod file lies in a directory the tenant writes: a link swapped in is refused (not
    read through: it may point at a root-only file), a FIFO is not waited on; the start
    falls back to the last valid version and says why."""
    base, pod_file, policy_file = hosting
    env, _state, _started = fake_podman
    assert play_from(tmp_path, pod_file, policy_file, env)[0].returncode == 0
    good = (tmp_path / "rendered.yaml").read_text()
    pod_file.unlink()
    if kind == "symlink":
        secret = tmp_path / "secret.yaml"
        secret.write_text(PROVIDER_POD)
        pod_file.symlink_to(secret)
    else:
        os.mkfifo(pod_file)
    played, rendered, _last, report = play_from(tmp_path, pod_file, policy_file, env)
    assert played.returncode == 0, played.stderr
    assert rendered.read_text() == good
    log = report.read_text()
    assert "started with the last valid version" in log
    reason = "is a symlink" if kind == "symlink" else "not a regular file"
    assert "cannot read the pod file: %s" % reason in log, log


def test_play_service_hands_the_loop_to_the_lean_supervisor(hosting, fake_podman, tmp_path):
    """play --service renders and plays with the whole engine, tells systemd READY, then
    execs supervise.py in the same process (systemd's MainPID) with the standard library
    only: the loop watches the containers' conmons, writes the status, and takes the pod
    down on SIGTERM."""
    import socket

    base, pod_file, policy_file = hosting
    env, state, _started = fake_podman
    # stand-ins for the conmons: real processes whose argv names their container
    conmons = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", container])
        for container in ("infra0", "web0")
    ]
    (state / "conmons").write_text("%d %d\n" % tuple(p.pid for p in conmons))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    status = tmp_path / "status.json"
    rendered = tmp_path / "rendered.yaml"
    env = dict(env, NOTIFY_SOCKET=str(tmp_path / "notify"))
    argv = [sys.executable, str(USERPOD), "play", "--service", "--status", str(status)]
    argv += ["--render-from", str(pod_file), "--last-valid", str(tmp_path / "last.yaml")]
    argv += ["--report", str(tmp_path / "start.log"), str(rendered), str(policy_file)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"READY=1" in notify.recv(4096)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cmdline = Path("/proc/%d/cmdline" % proc.pid).read_bytes().split(b"\0")
            if status.exists() and any(a.endswith(b"supervise.py") for a in cmdline):
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1].decode())
        assert any(a.endswith(b"pod_policy/supervise.py") for a in cmdline), cmdline
        assert b"-S" in cmdline and b"-I" in cmdline
        spec = json.loads(Path(str(rendered) + ".supervise.json").read_text())
        assert spec["pod"] == "mycontainertest" and spec["status_paths"] == [str(status)]
        assert stat.S_IMODE(os.stat(str(rendered) + ".supervise.json").st_mode) == 0o600
        # what the long-running process has loaded: no engine, no PyYAML
        maps = Path("/proc/%d/maps" % proc.pid).read_text()
        assert "_yaml" not in maps
        assert json.loads(status.read_text())["containers"]["pod-web"]["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for conmon in conmons:
            conmon.kill()
            conmon.wait()
        notify.close()
    assert proc.returncode == 0, err
    made = calls(state)
    assert ["pod", "stop", "--ignore", "mycontainertest"] in made
    assert any(call[:2] == ["kube", "down"] for call in made)
    assert json.loads(status.read_text())["state"] == "stopped"
