"""The pod unit's supervisor (pod_policy.supervise), driven with real processes.

Each "container" is a real process whose argv carries the container id, as conmon's does;
the supervisor holds real pidfds and waits in poll(). What podman itself does (conmon ends
when its container ends, ``podman start`` makes a new one) is what the backend below does
with those processes; the same loop runs against real podman in the molecule scenario
(molecule/default/tests/test_crashes.py)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import supervise

DELAY = 0.05


class Backend:
    """Containers as processes: ``plan[name]`` is a list of (seconds, exit code) runs, one
    per start; the last one repeats."""

    def __init__(self, plan, infra_seconds=60):
        self.plan = {name: list(runs) for name, runs in plan.items()}
        self.procs = {}
        self.starts = {name: [] for name in plan}
        self.downs = 0
        self.start_failures = set()
        self.infra = self._spawn("infra0", infra_seconds, 0)
        for name in plan:
            self.start(name)

    @staticmethod
    def _spawn(cid, seconds, code):
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys,time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))",
                str(seconds),
                str(code),
                cid,
            ]
        )

    def start(self, name):
        if name in self.start_failures:
            raise supervise.SuperviseError("podman start %s failed" % name)
        runs = self.plan[name]
        seconds, code = runs.pop(0) if len(runs) > 1 else runs[0]
        self.starts[name].append(time.monotonic())
        self.procs[name] = self._spawn("id-" + name, seconds, code)

    def containers(self):
        found = [self._info("infra0", "infra", self.infra, True)]
        for name, proc in self.procs.items():
            found.append(self._info("id-" + name, name, proc, False))
        return found

    @staticmethod
    def _info(cid, name, proc, infra):
        code = proc.poll()
        return {
            "id": cid,
            "name": name,
            "infra": infra,
            "status": "running" if code is None else "exited",
            "exit_code": 0 if code is None else (128 - code if code < 0 else code),
            "conmon": proc.pid,
            "pid": proc.pid,
        }

    def down(self, tick=None):
        self.downs += 1
        for proc in [self.infra, *self.procs.values()]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def close(self):
        self.down()


@pytest.fixture
def make():
    made = []

    def build(plan, policy="Always", restarts_max=5, window=300, **kwargs):
        backend = Backend(plan, **kwargs)
        made.append(backend)
        lines = []
        sup = supervise.Supervisor(
            backend,
            restart_policy=policy,
            restarts_max=restarts_max,
            window=window,
            delay_first=DELAY,
            delay_max=DELAY * 8,
            report=lines.append,
        )
        return backend, sup, lines

    yield build
    for backend in made:
        backend.close()


def run_with_timeout(sup, seconds=20):
    result = {}

    def target():
        result["status"] = sup.run()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the supervisor did not return"
    return result["status"]


def test_a_crash_loop_backs_off_and_gives_up(make):
    backend, sup, lines = make({"db": [(0, 1)], "web": [(60, 0)]}, restarts_max=5)
    assert run_with_timeout(sup) == supervise.EXIT_GAVE_UP
    starts = backend.starts["db"]
    assert len(starts) == 5  # the first start and 4 restarts; the 5th end gives up
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    for gap, delay in zip(gaps, [DELAY, 2 * DELAY, 4 * DELAY, 8 * DELAY]):
        assert gap >= delay * 0.9, gaps
    # exponential, not constant (the gaps also hold each stand-in's own run time)
    delays = [float(re.search(r"again in ([0-9.]+) s", line).group(1)) for line in lines[:4]]
    assert delays == [DELAY, 2 * DELAY, 4 * DELAY, 8 * DELAY]
    assert backend.starts["web"] and len(backend.starts["web"]) == 1
    assert backend.downs == 1  # the pod is taken down: the unit fails, nginx answers 502
    assert len(lines) == 5, lines  # one line per end: a crash loop cannot flood the log
    assert "restart 1 of at most 4 within 300 s" in lines[0]
    assert "db exited with code 1, 5 times in 300 s" in lines[-1]


def test_a_killed_container_is_started_again_and_stop_takes_the_pod_down(make):
    backend, sup, lines = make({"db": [(60, 0)], "web": [(60, 0)]})
    sup.install_signals()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("s", sup.run()), daemon=True)
    thread.start()
    time.sleep(0.2)
    backend.procs["db"].send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while len(backend.starts["db"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(backend.starts["db"]) == 2, lines
    assert backend.procs["db"].poll() is None
    assert lines == [
        "container db exited with code 137; starting it again in %g s (restart 1 of at most 4"
        " within 300 s)" % DELAY
    ]
    os.kill(os.getpid(), signal.SIGTERM)  # what systemd sends when the unit stops
    thread.join(5)
    assert result["s"] == supervise.EXIT_DONE
    assert backend.downs == 1
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_ends_older_than_the_window_do_not_count(make):
    # each run lasts longer than the window: 8 ends, never a give-up
    backend, sup, lines = make({"web": [(0.3, 1)] * 8 + [(60, 0)]}, restarts_max=2, window=0.25)
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while len(backend.starts["web"]) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(backend.starts["web"]) == 9, lines
    assert thread.is_alive()
    assert backend.downs == 0
    backend.down()  # the infra container ends: the supervisor returns
    thread.join(5)


@pytest.mark.parametrize(
    "policy, code, restarted",
    [("OnFailure", 0, False), ("OnFailure", 2, True), ("Never", 2, False), ("Always", 0, True)],
)
def test_restart_policy(make, policy, code, restarted):
    backend, sup, lines = make({"job": [(0, code), (60, 0)], "web": [(60, 0)]}, policy=policy)
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    time.sleep(0.6)
    assert len(backend.starts["job"]) == (2 if restarted else 1), lines
    assert thread.is_alive()  # web still runs
    if not restarted:
        assert lines == [
            "container job exited with code %d; restartPolicy %s: it stays stopped" % (code, policy)
        ]
    backend.down()
    thread.join(5)


@pytest.mark.parametrize("code, status", [(0, supervise.EXIT_DONE), (3, supervise.EXIT_GAVE_UP)])
def test_a_pod_whose_containers_all_ended_ends_the_unit(make, code, status):
    backend, sup, lines = make({"job": [(0, code)]}, policy="Never")
    assert run_with_timeout(sup) == status
    assert backend.downs == 1
    assert lines[-1].startswith("every container has ended")


def test_the_infra_container_ending_restarts_the_unit(make):
    backend, sup, lines = make({"web": [(60, 0)]}, infra_seconds=0.2)
    assert run_with_timeout(sup) == supervise.EXIT_POD_GONE
    assert lines == ["the pod's infra container has ended: the pod is started again"]


def test_a_start_that_fails_counts_as_an_end(make):
    backend, sup, lines = make({"db": [(0, 1)]}, restarts_max=3)
    backend.start_failures.add("db")
    assert run_with_timeout(sup) == supervise.EXIT_GAVE_UP
    assert len(backend.starts["db"]) == 1
    assert sum("could not be started" in line for line in lines) == 2


def test_a_recycled_pid_is_not_taken_for_conmon():
    # the pidfd is only kept when the process carries the container id in its argv
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "other-id"])
    try:
        assert supervise._conmon_fd(proc.pid, "some-id") is None
        fd = supervise._conmon_fd(proc.pid, "other-id")
        assert fd is not None
        os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    assert supervise._conmon_fd(0, "x") is None


def test_notify_reaches_a_datagram_socket(tmp_path):
    import socket

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        supervise.notify(path, "READY=1")
        assert server.recv(100) == b"READY=1"
    supervise.notify(None, "READY=1")  # no socket: nothing, no error
    supervise.notify(str(tmp_path / "missing"), "READY=1")


def test_a_log_beyond_its_bound_is_emptied_with_a_line_saying_so(tmp_path, make):
    log = tmp_path / "pod.log"
    log.write_bytes(b"x" * 5000)
    backend, sup, lines = make({"web": [(60, 0)]})
    sup.log_path, sup.log_max = str(log), 4096
    with open(log, "ab") as writer:  # conmon's way of writing: O_APPEND
        assert sup.bound_log() == 5000
        writer.write(b"after\n")
    text = log.read_text()
    assert text.count("\n") == 2 and text.endswith("after\n")
    assert re.fullmatch(
        r"\S+ stderr F \[webhosting-pods\] this log had grown to 5000 bytes, beyond"
        r" container_log_max \(4096\): the older lines were dropped\n",
        text.splitlines(keepends=True)[0],
    )
    assert lines == [
        "the container log had grown to 5000 bytes, beyond container_log_max (4096 bytes):"
        " it was emptied (while it keeps growing, a line a minute at most says how much was"
        " dropped)"
    ]
    assert sup.bound_log() == 0  # below the bound: untouched
    link = tmp_path / "link.log"
    link.symlink_to(log)
    log.write_bytes(b"y" * 5000)
    sup.log_path = str(link)
    assert sup.bound_log() == 0 and log.stat().st_size == 5000  # never through a link


def test_the_loop_keeps_the_log_bounded(tmp_path, make):
    log = tmp_path / "pod.log"
    log.write_bytes(b"")
    backend, sup, lines = make({"web": [(60, 0)]})
    sup.log_path, sup.log_max, sup.log_period = str(log), 1000, 0.05
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    with open(log, "ab", buffering=0) as writer:
        for _ in range(40):
            writer.write(b"z" * 100)
            time.sleep(0.01)
    time.sleep(0.2)
    assert log.stat().st_size < 1000 + 2000  # at most one period of writes beyond the bound
    # emptied many times, told once: the report cannot be flooded either
    assert len(lines) == 1 and "container_log_max" in lines[0], lines
    assert sup.log_drops >= 2
    sup.log_reported -= 60  # a minute later, the next emptying says how much was dropped
    log.write_bytes(b"z" * 2000)
    time.sleep(0.3)
    assert len(lines) == 2 and "bytes dropped (container_log_max 1000 bytes)" in lines[1], lines
    backend.down()
    thread.join(5)


# -- probes ------------------------------------------------------------------------------
class ProbedBackend(Backend):
    """Probes are real processes too: each exits with the number in the file
    ``health[name]`` (0 healthy), or sleeps ``seconds`` when that file holds "hang"."""

    def __init__(self, plan, health_dir, **kwargs):
        self.health_dir = health_dir
        self.stops = []
        self.probe_runs = []
        super().__init__(plan, **kwargs)

    def probe_argv(self, name, probe, infra_pid):
        assert infra_pid == self.infra.pid  # httpGet/tcpSocket enter its network namespace
        self.probe_runs.append((name, probe["kind_for_test"], time.monotonic()))
        flag = self.health_dir / ("%s-%s" % (name, probe["kind_for_test"]))
        script = (
            "import sys, time\n"
            "text = open(sys.argv[1]).read().strip()\n"
            "if text == 'hang': time.sleep(30)\n"
            "print('HTTP 503' if text != '0' else '')\n"
            "sys.exit(int(text))\n"
        )
        return [sys.executable, "-c", script, str(flag)]

    def stop(self, name, tick=None):
        self.stops.append(name)
        self.procs[name].terminate()
        self.procs[name].wait()


def probe(kind, **changes):
    spec = {
        "tcp": 8080,
        "initial_delay": 0,
        "period": 1,
        "timeout": 1,
        "failure_threshold": 2,
        "success_threshold": 1,
        "kind_for_test": kind,
    }
    spec.update(changes)
    return spec


@pytest.fixture
def probed(tmp_path):
    made = []

    def build(probes, health):
        for name, value in health.items():
            (tmp_path / name).write_text(value)
        backend = ProbedBackend({"web": [(60, 0)]}, tmp_path)
        made.append(backend)
        lines = []
        sup = supervise.Supervisor(
            backend,
            delay_first=DELAY,
            report=lines.append,
            probes={"web": probes},
        )
        thread = threading.Thread(target=sup.run, daemon=True)
        return backend, sup, lines, thread

    yield build
    for backend in made:
        backend.close()


def _json_or_none(path):
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _wait(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_failing_liveness_probe_restarts_the_container(probed, tmp_path):
    backend, sup, lines, thread = probed({"liveness": probe("liveness")}, {"web-liveness": "1"})
    thread.start()
    assert _wait(lambda: len(backend.starts["web"]) >= 2), lines
    assert backend.stops == ["web"]
    assert lines[0] == (
        "container web failed its liveness probe (tcpSocket 8080) 2 times in a row: HTTP 503;"
        " it is stopped and started again"
    )
    assert "container web exited with code" in lines[1]
    (tmp_path / "web-liveness").write_text("0")  # healthy again: no more restarts
    time.sleep(2.5)
    assert len(backend.starts["web"]) == 2, lines
    backend.down()
    thread.join(5)


def test_a_hanging_probe_fails_by_its_timeout(probed):
    backend, sup, lines, thread = probed({"liveness": probe("liveness")}, {"web-liveness": "hang"})
    thread.start()
    assert _wait(lambda: backend.stops), lines
    assert "no answer within 1 s" in lines[0]
    backend.down()
    thread.join(5)


def test_liveness_waits_for_the_startup_probe(probed, tmp_path):
    backend, sup, lines, thread = probed(
        {"startup": probe("startup", failure_threshold=10), "liveness": probe("liveness")},
        {"web-startup": "1", "web-liveness": "0"},
    )
    thread.start()
    time.sleep(2.5)
    kinds = {kind for _name, kind, _t in backend.probe_runs}
    assert kinds == {"startup"}, backend.probe_runs
    (tmp_path / "web-startup").write_text("0")
    assert _wait(lambda: any(k == "liveness" for _n, k, _t in backend.probe_runs)), lines
    runs = len([1 for _n, k, _t in backend.probe_runs if k == "startup"])
    time.sleep(1.5)
    assert len([1 for _n, k, _t in backend.probe_runs if k == "startup"]) == runs  # done
    assert backend.stops == [] and lines == []
    backend.down()
    thread.join(5)


def test_readiness_is_reported_and_restarts_nothing(probed, tmp_path):
    backend, sup, lines, thread = probed({"readiness": probe("readiness")}, {"web-readiness": "0"})
    thread.start()
    assert _wait(lambda: sup.watched and list(sup.watched.values())[0].ready is True)
    (tmp_path / "web-readiness").write_text("1")
    assert _wait(lambda: any("is not ready" in line for line in lines)), lines
    (tmp_path / "web-readiness").write_text("0")
    assert _wait(lambda: any("is ready again" in line for line in lines)), lines
    assert backend.stops == [] and len(backend.starts["web"]) == 1
    backend.down()
    thread.join(5)


@pytest.mark.parametrize("stop_fails", [False, True])
def test_take_down_stops_the_containers_before_kube_down(tmp_path, stop_fails):
    """podman 4.3's kube down SIGKILLs the containers: the backend asks for a stop with
    their own stop signal and timeout first, and still takes the pod down when that fails."""
    record = tmp_path / "argv.log"
    fake = tmp_path / "podman"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> %s\n'
        'if [ "$1 $2" = "pod stop" ] && [ -n "$FAIL_STOP" ]; then echo nope >&2; exit 125; fi\n'
        % record
    )
    fake.chmod(0o755)
    env = dict(os.environ, FAIL_STOP="1" if stop_fails else "")
    supervise.Podman("shop", "/state/shop.play.yaml", podman=str(fake), env=env).down()
    assert record.read_text().splitlines() == [
        "pod stop --ignore shop",
        "kube down /state/shop.play.yaml",
    ]


def test_the_http_and_tcp_probe_script_against_a_real_server(tmp_path):
    """The probe script as the runner starts it (here without nsenter: a local server)."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()
            self.wfile.write(self.headers.get("X-Probe", "").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    podman = supervise.Podman("shop", "/x.yaml")
    try:

        def run(spec):
            argv = podman.probe_argv("shop-web", dict(spec, timeout=2), 4242)
            assert argv[:6] == [
                "nsenter",
                "--target=4242",
                "--user",
                "--net",
                "--preserve-credentials",
                "--",
            ]
            done = subprocess.run(argv[6:], capture_output=True, text=True, timeout=30)
            return done.returncode, done.stdout.strip()

        http_spec = {"scheme": "HTTP", "port": port, "headers": [["X-Probe", "1"]]}
        assert run({"http": dict(http_spec, path="/ok")}) == (0, "")
        assert run({"http": dict(http_spec, path="/missing")}) == (1, "HTTP 404")
        assert run({"tcp": port}) == (0, "")
    finally:
        server.shutdown()
        server.server_close()
    code, out = run({"tcp": port})
    assert code == 1 and out.startswith("ConnectionRefusedError"), out
    argv = podman.probe_argv("shop-web", {"exec": ["/bin/check", "a b"], "timeout": 1}, 1)
    assert argv == ["podman", "exec", "shop-web", "/bin/check", "a b"]


def test_the_status_file_follows_the_pod(tmp_path, make):
    import json

    status = tmp_path / "status.json"
    link_target = tmp_path / "elsewhere"
    link_target.write_text("keep")
    tenant = tmp_path / "pod_status.json"
    tenant.symlink_to(link_target)  # planted: replaced, never written through
    backend, sup, lines = make({"db": [(0.3, 1), (60, 0)], "web": [(60, 0)]})
    sup.status_paths = [str(status), str(tenant)]
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    assert _wait(lambda: status.exists() and '"restarts": 1' in status.read_text())
    assert _wait(lambda: json.loads(status.read_text())["containers"]["db"]["state"] == "running")
    data = json.loads(status.read_text())
    assert data["state"] == "running" and data["restart_policy"] == "Always"
    assert data["containers"]["db"]["last_exit_code"] == 1
    assert data["containers"]["web"] == {
        "state": "running",
        "restarts": 0,
        "last_exit_code": None,
        "last_end": None,
        "started": True,
        "ready": None,
        "probes": [],
    }
    # The tenant's copy is written just after the host's: wait for it to catch up.
    assert _wait(lambda: not tenant.is_symlink() and _json_or_none(tenant) == _json_or_none(status))
    assert _json_or_none(tenant)["containers"] == data["containers"]
    assert link_target.read_text() == "keep"
    assert oct(status.stat().st_mode & 0o777) == "0o640"
    backend.down()
    thread.join(5)
    assert json.loads(status.read_text())["state"] == "restarting"  # the infra ended
