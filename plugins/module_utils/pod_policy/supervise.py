# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod unit's supervisor: restart policy with back-off, and a unit that fails.

Podman alone leaves three holes (measured on podman 4.3 and 5.4): a container that fails at
start is restarted with no back-off (hundreds of times a minute), a container stopped with
``podman stop``/``kill`` stays stopped, and the ``kube play`` service container (what a
systemd unit follows) lives until *every* container has ended, so the unit says ``active``
with its database gone.

So the runner plays the pod with ``restartPolicy: Never`` (podman restarts nothing) and stays
the unit's main process, applying the tenant's ``restartPolicy`` itself:

- it holds a pidfd of each container's conmon (conmon ends when its container does), so it
  waits in ``poll()`` and costs no CPU while the pod runs;
- a container that ended is started again (``Always``; ``OnFailure`` when its exit code is
  not 0) after 1, 2, 4, ... seconds (at most ``delay_max``), one report line each;
- ``restarts_max`` ends within ``window`` seconds: the pod is taken down and the supervisor
  exits with :data:`EXIT_GAVE_UP`, which the unit does not retry (the unit is ``failed``);
- the infra container gone: :data:`EXIT_POD_GONE` (systemd restarts the whole unit);
- SIGTERM/SIGINT (the unit stops): the pod is taken down and it exits 0.

The podman calls are argv lists behind a small backend (:class:`Podman`); the tests drive the
same loop with real processes standing in for conmon.
"""

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time

EXIT_DONE = 0
EXIT_POD_GONE = 3
EXIT_GAVE_UP = 4

RESTART_POLICIES = ("Always", "OnFailure", "Never")
LOG_REPORT_PERIOD = 60  # seconds between two report lines about an emptied container log

# httpGet and tcpSocket probes, run in the pod's network namespace: exit 0 healthy, else
# 1 with the reason on stdout.
PROBE_SCRIPT = r"""
import http.client, json, socket, ssl, sys
spec, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
try:
    if "tcp" in spec:
        socket.create_connection(("127.0.0.1", spec["tcp"]), timeout).close()
        sys.exit(0)
    h = spec["http"]
    if h["scheme"] == "HTTPS":
        c = http.client.HTTPSConnection("127.0.0.1", h["port"], timeout=timeout,
                                        context=ssl._create_unverified_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", h["port"], timeout=timeout)
    headers = {"User-Agent": "webhosting-pods-probe"}
    headers.update(dict(h["headers"]))
    c.request("GET", h["path"], headers=headers)
    status = c.getresponse().status
except (OSError, http.client.HTTPException) as exc:
    print(type(exc).__name__ + ": " + str(exc)[:200])
    sys.exit(1)
if 200 <= status < 400:
    sys.exit(0)
print("HTTP %d" % status)
sys.exit(1)
"""


class SuperviseError(Exception):
    """podman failed in a way the supervisor cannot handle."""


def notify(address, text):
    """Send ``text`` to systemd's notification socket ``address`` (the unit's
    $NOTIFY_SOCKET, which the runner keeps from podman and the containers), if any."""
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(text.encode("utf-8"))
    except OSError:
        pass


def pod_network_argv(pid):
    """The command prefix that runs a program in the network namespace of process ``pid``
    (the pod's infra container). The namespace belongs to podman's user namespace, which
    the calling user owns and so may enter directly; nsenter then execs the program. The
    socket forwarder and the probes enter the pod this one way."""
    return ["nsenter", "--target=%d" % pid, "--user", "--net", "--preserve-credentials", "--"]


def _first(data):
    """podman 4 prints one object for one pod, podman 5 a list."""
    if isinstance(data, list):
        return data[0] if data else {}
    return data or {}


class Podman:
    """The podman commands the supervisor needs, for pod ``pod`` (argv lists only)."""

    def __init__(self, pod, play_file, podman="podman", env=None, timeout=120):
        self.pod = pod
        self.play_file = play_file
        self.podman = podman
        self.env = env
        self.timeout = timeout

    def _run(self, args, what, tick=None):
        """Run podman; ``tick`` is called every 0.1 s while it runs."""
        try:
            proc = subprocess.Popen(
                [self.podman] + args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
            )
        except OSError as exc:
            raise SuperviseError("%s: %s" % (what, exc)) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                out, err = proc.communicate(timeout=0.1 if tick else self.timeout)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    raise SuperviseError("%s: no answer in %d s" % (what, self.timeout)) from None
                if tick:
                    tick()
        if proc.returncode != 0:
            message = (err or out).strip().splitlines()
            raise SuperviseError(
                "%s failed (exit %d): %s"
                % (what, proc.returncode, message[-1] if message else "no message")
            )
        return out

    def containers(self):
        """Every container of the pod: dicts with id, name, infra, status, exit_code,
        conmon (0 when it has none)."""
        pod = _first(json.loads(self._run(["pod", "inspect", self.pod], "podman pod inspect")))
        ids = [c.get("Id") for c in pod.get("Containers") or () if c.get("Id")]
        if not ids:
            return []
        found = []
        for data in json.loads(self._run(["container", "inspect"] + ids, "podman inspect")):
            state = data.get("State") or {}
            found.append(
                {
                    "id": data.get("Id", ""),
                    "name": data.get("Name", "").lstrip("/"),
                    "infra": bool(data.get("IsInfra")),
                    "status": state.get("Status", ""),
                    "exit_code": state.get("ExitCode", 0),
                    "conmon": state.get("ConmonPid") or 0,
                    "pid": state.get("Pid") or 0,
                }
            )
        return found

    def start(self, name):
        self._run(["start", name], "podman start %s" % name)

    def stop(self, name, tick=None):
        self._run(["stop", name], "podman stop %s" % name, tick=tick)

    def probe_argv(self, name, probe, infra_pid):
        """The command of one probe: ``exec`` inside the container (podman exec);
        ``httpGet``/``tcpSocket`` from outside it, by this Python in the pod's network
        namespace (entered like the socket forwarder: the hosting user owns podman's user
        namespace), so the image needs no curl or nc."""
        if "exec" in probe:
            return [self.podman, "exec", name] + list(probe["exec"])
        handler = {key: probe[key] for key in ("http", "tcp") if key in probe}
        return pod_network_argv(infra_pid) + [
            sys.executable,
            "-I",
            "-c",
            PROBE_SCRIPT,
            json.dumps(handler),
            str(probe["timeout"]),
        ]

    def down(self, tick=None):
        """Stop the pod's containers, each with its stop signal and timeout, then remove
        the pod. podman 4.3's kube down alone kills them at once (SIGKILL, podman issue
        22397, fixed in 5.x): a database would lose what it had not written yet."""
        try:
            self._run(["pod", "stop", "--ignore", self.pod], "podman pod stop", tick=tick)
        except SuperviseError:
            pass  # kube down still takes the pod down (its failure is the one reported)
        self._run(["kube", "down", self.play_file], "podman kube down", tick=tick)


class _Watched:
    def __init__(self, info):
        self.id = info["id"]
        self.name = info["name"]
        self.fd = None
        self.deaths = []
        self.due = None  # monotonic time of a scheduled start
        self.finished = False
        self.probes = []
        self.started = True  # its startup probe has passed (or it has none)
        self.ready = None  # readiness (None: no readiness probe, or not known yet)
        self.restarts = 0  # ends handled by a restart since the pod started
        self.last_code = None
        self.last_end = None  # wall-clock time of its last end


class _Probe:
    """One probe of one container and where it stands."""

    def __init__(self, entry, kind, spec):
        self.entry = entry
        self.kind = kind
        self.spec = spec
        self.due = None
        self.proc = None
        self.fd = None
        self.deadline = None
        self.failures = self.successes = 0

    def describe(self):
        spec = self.spec
        if "exec" in spec:
            return "exec %s" % " ".join(spec["exec"])[:80]
        if "tcp" in spec:
            return "tcpSocket %d" % spec["tcp"]
        return "httpGet %s %d%s" % (
            spec["http"]["scheme"],
            spec["http"]["port"],
            spec["http"]["path"],
        )


def _iso(seconds):
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _conmon_fd(pid, container_id):
    """A pidfd of conmon ``pid`` when it is the conmon of ``container_id``, else None (the
    container has already ended)."""
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None
    argv = []
    for _ in range(20):
        # empty for a moment right after an exec (and for good once the process has ended)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            break
        if argv != [b""]:
            break
        time.sleep(0.01)
    if container_id.encode() not in argv:
        os.close(fd)
        return None
    return fd


class Supervisor:
    """Apply ``restart_policy`` to the containers of a running pod (see the module)."""

    def __init__(
        self,
        backend,
        restart_policy="Always",
        restarts_max=5,
        window=300,
        delay_first=1.0,
        delay_max=60.0,
        report=None,
        notify_address=None,
        log_path=None,
        log_max=0,
        log_period=1.0,
        probes=None,
        status_paths=(),
        clock=time.monotonic,
        conmon_fd=_conmon_fd,
    ):
        if restart_policy not in RESTART_POLICIES:
            raise ValueError("restart policy %r" % (restart_policy,))
        self.backend = backend
        self.restart_policy = restart_policy
        self.restarts_max = restarts_max
        self.window = window
        self.delay_first = delay_first
        self.delay_max = delay_max
        self.report = report or (lambda line: None)
        self.clock = clock
        self.notify_address = notify_address
        self.log_path = log_path
        self.log_max = log_max
        self.log_period = log_period
        self.log_due = None
        self.probes = probes or {}  # podman container name: {kind: probe}
        self.status_paths = list(status_paths)
        self.state = "starting"
        self.infra_pid = 0
        self.log_reported = None  # when the last line about an emptied log was written
        self.log_drops = self.log_dropped = 0  # emptied since then: times, bytes
        self.conmon_fd = conmon_fd
        self.watched = {}
        self.infra_fd = None
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def notify(self, text):
        notify(self.notify_address, text)

    # -- signals -----------------------------------------------------------------------------
    def install_signals(self):
        def stop(_signum, _frame):
            self.stopping = True
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    # -- state -------------------------------------------------------------------------------
    def attach(self):
        """Read the pod's containers and hold a pidfd of each running one's conmon."""
        for info in self.backend.containers():
            if info["infra"]:
                if self.infra_fd is None:
                    self.infra_pid = info.get("pid") or 0
                    self.infra_fd = self.conmon_fd(info["conmon"], info["id"])
                    if self.infra_fd is None:
                        raise SuperviseError("the pod's infra container is not running")
                continue
            entry = self.watched.get(info["id"])
            if entry is None:
                entry = self.watched[info["id"]] = _Watched(info)
                entry.probes = [
                    _Probe(entry, kind, spec)
                    for kind, spec in sorted((self.probes.get(entry.name) or {}).items())
                ]
            if entry.fd is None and info["status"] == "running":
                entry.fd = self.conmon_fd(info["conmon"], info["id"])
                if entry.fd is not None:
                    self._schedule_probes(entry)
        for entry in self.watched.values():
            if entry.fd is None and entry.due is None and not entry.finished:
                self._ended(entry)

    def _settle(self, entry, tries=50, pause=0.1):
        """(pidfd, None) while container ``entry`` runs, else (None, its exit code), with
        -1 when it is gone. Right after its conmon ended podman may still say "running"
        (its cleanup has not run yet): asked again after ``pause``."""
        for _ in range(tries):
            info = next((i for i in self.backend.containers() if i["id"] == entry.id), None)
            if info is None:
                return None, -1
            if info["status"] != "running":
                return None, info["exit_code"]
            fd = self.conmon_fd(info["conmon"], info["id"])
            if fd is not None:
                return fd, None
            time.sleep(pause)
        raise SuperviseError("container %s runs, but its conmon cannot be found" % entry.name)

    def _exit_code(self, entry):
        fd, code = self._settle(entry)
        if fd is not None:
            os.close(fd)
        return code

    def _ended(self, entry):
        """Container ``entry`` has ended: schedule its start, or finish it, or give up."""
        self._cancel_probes(entry)
        entry.fd, code = self._settle(entry)
        if entry.fd is not None:  # running again (started by someone else): watch it
            self._schedule_probes(entry)
            return None
        if code == -1:
            self.report("container %s was removed: the pod is started again" % entry.name)
            return EXIT_POD_GONE
        entry.last_code = code
        entry.last_end = time.time()
        restart = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and code != 0
        )
        if not restart:
            entry.finished = True
            self.report(
                "container %s exited with code %d; restartPolicy %s: it stays stopped"
                % (entry.name, code, self.restart_policy)
            )
            return None
        now = self.clock()
        entry.deaths = [t for t in entry.deaths if now - t < self.window] + [now]
        count = len(entry.deaths)
        if count >= self.restarts_max:
            self.report(
                "container %s exited with code %d, %d times in %d s: the pod is stopped and "
                "its unit fails (drop the restart trigger to start it again)"
                % (entry.name, code, count, self.window)
            )
            return EXIT_GAVE_UP
        delay = min(self.delay_first * (2 ** (count - 1)), self.delay_max)
        entry.due = now + delay
        entry.restarts += 1
        self.report(
            "container %s exited with code %d; starting it again in %g s (restart %d of at"
            " most %d within %d s)"
            % (entry.name, code, delay, count, self.restarts_max - 1, self.window)
        )
        self.notify(
            "STATUS=container %s restarting (%d in %d s)" % (entry.name, count, self.window)
        )
        return None

    def _start(self, entry):
        entry.due = None
        try:
            self.backend.start(entry.name)
        except SuperviseError as exc:
            self.report("container %s could not be started: %s" % (entry.name, exc))
            return self._ended(entry)
        entry.fd, _code = self._settle(entry)
        if entry.fd is None:
            return self._ended(entry)
        self._schedule_probes(entry)
        self.notify("STATUS=running")
        return None

    @property
    def log_bounded(self):
        """Whether there is a container log to keep below log_max."""
        return bool(self.log_path) and self.log_max > 0

    def bound_log(self):
        """Empty the container log when it has grown beyond ``log_max`` bytes, leaving one
        line (in the k8s-file format) that says so. conmon appends (O_APPEND), so it goes on
        writing at the new end; logrotate keeps the earlier rotations. Returns the number of
        bytes dropped."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.log_path, flags)
        except OSError:
            return 0
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size <= self.log_max:
                return 0
            os.ftruncate(fd, 0)
            now = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            os.write(
                fd,
                (
                    "%s.%09d+00:00 stderr F [webhosting-pods] this log had grown to %d bytes,"
                    " beyond container_log_max (%d): the older lines were dropped\n"
                    % (stamp, int((now % 1) * 1e9), info.st_size, self.log_max)
                ).encode(),
            )
        except OSError:
            return 0
        finally:
            os.close(fd)
        self.log_drops += 1
        self.log_dropped += info.st_size
        now = self.clock()
        if self.log_reported is None:
            self.report(
                "the container log had grown to %d bytes, beyond container_log_max (%d bytes):"
                " it was emptied (while it keeps growing, a line a minute at most says how much"
                " was dropped)" % (info.st_size, self.log_max)
            )
        elif now - self.log_reported >= LOG_REPORT_PERIOD:
            self.report(
                "the container log was emptied %d times in %d s, %d bytes dropped"
                " (container_log_max %d bytes)"
                % (self.log_drops, now - self.log_reported, self.log_dropped, self.log_max)
            )
        else:
            return info.st_size
        self.log_reported = now
        self.log_drops = self.log_dropped = 0
        return info.st_size

    # -- status ------------------------------------------------------------------------------
    def status(self):
        """Where the pod and each container stand (what write_status writes)."""
        containers = {}
        for entry in self.watched.values():
            if entry.fd is not None:
                state = "running"
            elif entry.due is not None:
                state = "waiting"  # to be started again after its back-off
            else:
                state = "exited"
            containers[entry.name] = {
                "state": state,
                "restarts": entry.restarts,
                "last_exit_code": entry.last_code,
                "last_end": _iso(entry.last_end),
                "started": entry.started,
                "ready": entry.ready,
                "probes": sorted(p.kind for p in entry.probes),
            }
        return {
            "state": self.state,
            "updated": _iso(time.time()),
            "restart_policy": self.restart_policy,
            "containers": containers,
        }

    def write_status(self, state=None):
        """Write status() to each of status_paths (a new file renamed over the old one: a
        link planted there is replaced, never followed); a path that cannot be written is
        skipped."""
        if state is not None:
            self.state = state
        if not self.status_paths:
            return
        text = json.dumps(self.status(), indent=2, sort_keys=True) + "\n"
        for path in self.status_paths:
            directory, name = os.path.split(path)
            try:
                fd, temporary = _new_file(directory, name)
            except OSError:
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    os.fchmod(handle.fileno(), 0o640)
                os.replace(temporary, path)
            except OSError:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass

    # -- probes ------------------------------------------------------------------------------
    def _schedule_probes(self, entry):
        """A container (re)started: its probes begin after their initial delay, liveness
        and readiness only once the startup probe has passed."""
        now = self.clock()
        entry.started = not any(p.kind == "startup" for p in entry.probes)
        entry.ready = None
        for probe in entry.probes:
            self._kill_probe(probe)
            probe.failures = probe.successes = 0
            probe.due = now + probe.spec["initial_delay"]

    def _cancel_probes(self, entry):
        for probe in entry.probes:
            self._kill_probe(probe)
            probe.due = None

    def _kill_probe(self, probe):
        if probe.proc is not None:
            if probe.proc.poll() is None:
                probe.proc.kill()
            probe.proc.wait()
            probe.proc = None
        if probe.fd is not None:
            os.close(probe.fd)
            probe.fd = None
        probe.deadline = None

    def _launch_probe(self, probe):
        probe.due = self.clock() + probe.spec["period"]
        entry = probe.entry
        if entry.fd is None or probe.proc is not None:
            return
        if (probe.kind == "startup") == entry.started:
            return  # the startup probe runs until it passes, the others after it
        argv = self.backend.probe_argv(entry.name, probe.spec, self.infra_pid)
        try:
            probe.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            probe.fd = os.pidfd_open(probe.proc.pid)
        except OSError as exc:
            self._kill_probe(probe)
            self._probe_result(probe, False, "cannot run the probe: %s" % exc.strerror)
            return
        probe.deadline = self.clock() + probe.spec["timeout"]

    def _finish_probe(self, probe, timed_out=False):
        proc = probe.proc
        if timed_out:
            proc.kill()
        output = proc.stdout.read(4096) if proc.stdout else b""
        code = proc.wait()
        if proc.stdout:
            proc.stdout.close()
        probe.proc = None
        os.close(probe.fd)
        probe.fd = None
        probe.deadline = None
        if timed_out:
            reason = "no answer within %d s" % probe.spec["timeout"]
        else:
            text = output.decode("utf-8", "replace").strip().splitlines()
            reason = (text[-1][:200] if text else "") or "exit code %d" % code
        return self._probe_result(probe, code == 0 and not timed_out, reason)

    def _probe_result(self, probe, ok, reason):
        entry = probe.entry
        if ok:
            probe.failures = 0
            probe.successes += 1
            if probe.kind == "startup":
                entry.started = True
                now = self.clock()
                for other in entry.probes:
                    if other is not probe:
                        other.due = now
            elif probe.kind == "readiness" and probe.successes >= probe.spec["success_threshold"]:
                if entry.ready is False:
                    self.report("container %s is ready again" % entry.name)
                entry.ready = True
            return None
        probe.successes = 0
        probe.failures += 1
        if probe.failures < probe.spec["failure_threshold"]:
            return None
        probe.failures = 0
        if probe.kind == "readiness":
            if entry.ready is not False:
                self.report(
                    "container %s is not ready: its readiness probe (%s) failed %d times: %s"
                    % (entry.name, probe.describe(), probe.spec["failure_threshold"], reason)
                )
            entry.ready = False
            return None
        self.report(
            "container %s failed its %s probe (%s) %d times in a row: %s; it is stopped and"
            " started again"
            % (entry.name, probe.kind, probe.describe(), probe.spec["failure_threshold"], reason)
        )
        self._cancel_probes(entry)
        tick = self.bound_log if self.log_bounded else None
        try:
            self.backend.stop(entry.name, tick=tick)
        except SuperviseError as exc:
            self.report("container %s could not be stopped: %s" % (entry.name, exc))
        return None  # its conmon ends: the restart policy (and its back-off) takes over

    def _probe_times(self):
        times = []
        for entry in self.watched.values():
            for probe in entry.probes:
                if probe.proc is not None:
                    times.append(probe.deadline)
                elif probe.due is not None:
                    times.append(probe.due)
        return times

    # -- the loop ----------------------------------------------------------------------------
    def _close(self, entry):
        if entry.fd is not None:
            os.close(entry.fd)
            entry.fd = None

    def take_down(self):
        """podman kube down; the container log stays bounded while the containers stop (a
        container that ignores SIGTERM may flood it for podman's whole stop timeout)."""
        for entry in self.watched.values():
            self._cancel_probes(entry)
        tick = self.bound_log if self.log_bounded else None
        try:
            self.backend.down(tick=tick)
        except SuperviseError as exc:
            self.report("the pod could not be taken down: %s" % exc)

    def _status_signature(self):
        return (self.state,) + tuple(
            (e.name, e.fd is not None, e.due is not None, e.restarts, e.started, e.ready)
            for e in self.watched.values()
        )

    def run(self):
        """Supervise until the unit stops or the pod cannot go on; the exit status."""
        self.attach()
        self.state = "running"
        written = None
        while True:
            if self.stopping:
                self.take_down()
                self.write_status("stopped")
                return EXIT_DONE
            if all(e.finished for e in self.watched.values()):
                failed = [e.name for e in self.watched.values() if self._exit_code(e) != 0]
                self.report(
                    "every container has ended%s"
                    % (" (failed: %s)" % ", ".join(failed) if failed else "")
                )
                self.take_down()
                self.write_status("failed" if failed else "stopped")
                return EXIT_GAVE_UP if failed else EXIT_DONE
            signature = self._status_signature()
            if signature != written:
                self.write_status()
                written = signature
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            poller.register(self.infra_fd, select.POLLIN)
            by_fd = {}
            for entry in self.watched.values():
                if entry.fd is not None:
                    poller.register(entry.fd, select.POLLIN)
                    by_fd[entry.fd] = entry
            probes_by_fd = {}
            for entry in self.watched.values():
                for probe in entry.probes:
                    if probe.fd is not None:
                        poller.register(probe.fd, select.POLLIN)
                        probes_by_fd[probe.fd] = probe
            due = [e.due for e in self.watched.values() if e.due is not None]
            due += self._probe_times()
            if self.log_bounded:
                if self.log_due is None or self.log_due <= self.clock():
                    # a log that had to be emptied is looked at again 10 times as often
                    # until it stays below its bound (a flood of 200 MB/s was measured)
                    hot = self.bound_log() > 0
                    self.log_due = self.clock() + self.log_period / (10 if hot else 1)
                due.append(self.log_due)
            timeout = None
            if due:
                timeout = max(0, int((min(due) - self.clock()) * 1000) + 1)
            try:
                events = poller.poll(timeout)
            except InterruptedError:
                events = []
            status = self._handle(events, by_fd, probes_by_fd)
            if status is not None:
                if status != EXIT_POD_GONE:
                    self.take_down()
                self.write_status("failed" if status == EXIT_GAVE_UP else "restarting")
                return status

    def _handle(self, events, by_fd, probes_by_fd=None):
        probes_by_fd = probes_by_fd or {}
        for fd, _mask in events:
            if fd in probes_by_fd:
                probe = probes_by_fd[fd]
                if probe.fd == fd and probe.proc is not None and not self.stopping:
                    self._finish_probe(probe)
                continue
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 64)
                except OSError:
                    pass
                continue
            if fd == self.infra_fd:
                if self.stopping:
                    continue
                self.report("the pod's infra container has ended: the pod is started again")
                return EXIT_POD_GONE
            entry = by_fd.get(fd)
            if entry is None or entry.fd != fd:
                continue  # closed (and its number reused) earlier in this round
            self._close(entry)
            if self.stopping:
                continue
            status = self._ended(entry)
            if status is not None:
                return status
        now = self.clock()
        for entry in list(self.watched.values()):
            if self.stopping:
                break
            if entry.due is not None and entry.due <= now:
                status = self._start(entry)
                if status is not None:
                    return status
        now = self.clock()
        for entry in list(self.watched.values()):
            for probe in entry.probes:
                if self.stopping:
                    return None
                if probe.proc is not None:
                    if probe.deadline is not None and probe.deadline <= now:
                        self._finish_probe(probe, timed_out=True)
                elif probe.due is not None and probe.due <= now:
                    self._launch_probe(probe)
        return None


# -- the lean supervisor -----------------------------------------------------------------------
# `userpod play --service` renders, pins and plays the pod with the whole engine loaded
# (PyYAML and every rule: ~15 MB per hosting), then execs this file as a script in the same
# process (systemd's MainPID), with a JSON spec of what the loop needs: the long-running
# process loads only the standard library modules above, paid once per hosting (issue 32).


def _new_file(directory, name):
    """(fd, path) of a new 0600 file ``.NAME.PID.N`` in ``directory``, made with O_EXCL and
    without following a link (the module tempfile would cost the supervisor its imports)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(1000):
        path = os.path.join(directory, ".%s.%d.%d" % (name, os.getpid(), attempt))
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise OSError("no free temporary name in %s" % directory)


def append_report(path, lines):
    """Timestamped lines appended to the tenant's log ``path``: never through a symlink,
    never into a FIFO (best effort: a log that cannot be written is skipped)."""
    if not path:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = "".join(
        "%s %s\n" % (stamp, "".join(c if c.isprintable() else "?" for c in line)[:4096])
        for line in lines
    )
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o640)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, text.encode("utf-8"))
    except OSError:
        pass
    finally:
        os.close(fd)


# the keys of the spec main() reads, written by supervisor_spec()
SPEC_KEYS = (
    "pod",
    "play_file",
    "podman",
    "restart_policy",
    "restarts_max",
    "window",
    "report",
    "notify_address",
    "log_path",
    "log_max",
    "probes",
    "status_paths",
)
EXIT_RUNTIME = 3  # as userpod's: the unit restarts


def supervisor_spec(**values):
    """The spec of a supervisor (plain data, JSON as it is): every key of SPEC_KEYS,
    nothing else. userpod builds it once; the loop runs from it in process or, after the
    exec, from its JSON file."""
    missing = [key for key in SPEC_KEYS if key not in values]
    extra = [key for key in values if key not in SPEC_KEYS]
    if missing or extra:
        raise ValueError("supervisor spec: missing %s, unknown %s" % (missing, extra))
    return values


def supervisor_from_spec(spec):
    """The Supervisor a spec describes; it reports to the tenant's log and to stderr
    (the unit's journal)."""

    def report(line):
        append_report(spec["report"], [line])
        print(line, file=sys.stderr, flush=True)

    return Supervisor(
        Podman(spec["pod"], spec["play_file"], podman=spec["podman"]),
        restart_policy=spec["restart_policy"],
        restarts_max=spec["restarts_max"],
        window=spec["window"],
        report=report,
        notify_address=spec["notify_address"],
        log_path=spec["log_path"],
        log_max=spec["log_max"],
        probes=spec["probes"],
        status_paths=spec["status_paths"],
    )


def run_supervisor(supervisor):
    """The loop until the unit stops or the pod cannot go on; the exit status. A pod that
    cannot be supervised is taken down and the unit restarted (EXIT_RUNTIME)."""
    try:
        return supervisor.run()
    except SuperviseError as exc:
        supervisor.report("the pod is started again: %s" % exc)
        supervisor.take_down()
        return EXIT_RUNTIME


def main(argv):
    """``python3 -I -S supervise.py SPEC``: supervise the running pod as the spec says
    (the pod unit's main process after userpod play has played it); the exit status."""
    if len(argv) != 2:
        print("usage: supervise.py SPEC", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        supervisor = supervisor_from_spec(json.load(handle))
    supervisor.install_signals()
    return run_supervisor(supervisor)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
