"""Stand-ins for podman and nsenter, for the tests that run `userpod start`, `status` and
`stop` (tests/unit/bin): Python scripts first on PATH that record their argv in a state
directory and answer what userpod asks. The nsenter stand-in binds the unix socket and
waits, like the real forwarder."""

import os
import signal
import sys
from pathlib import Path

FAKE_PODMAN = '''\
#!{python}
"""A stand-in for podman: records argv, answers what userpod asks."""
import json, os, socket, sys, time
state = os.environ["FAKE_PODMAN_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "calls"), "a") as log:
    log.write(json.dumps(args) + "\\n")
def fail(message, code=125):
    sys.stderr.write("Error: " + message + "\\n")
    sys.exit(code)
running = os.path.join(state, "running")
if args[:2] == ["kube", "play"]:
    if os.path.exists(os.path.join(state, "fail-play")):
        fail("image not known")
    open(running, "w").close()
    print("Pod:\\n0123456789ab")
elif args[:2] == ["pod", "inspect"] and len(args) == 3:
    # the supervisor's view: the containers of the pod, as JSON (podman 4 prints one object)
    if not os.path.exists(running):
        fail("no such pod " + args[-1])
    print(json.dumps(dict(Containers=[dict(Id="infra0"), dict(Id="web0")])))
elif args[:2] == ["pod", "inspect"]:
    if not os.path.exists(running):
        fail("no such pod " + args[-1])
    print("infra0123456789" if "InfraContainerID" in args[3] else "Running")
elif args[:2] == ["container", "inspect"] and "--format" not in " ".join(args):
    # conmons: the pids of real processes the test started (file "conmons": infra, web)
    with open(os.path.join(state, "conmons")) as handle:
        infra, web = (int(word) for word in handle.read().split())
    print(json.dumps([
        dict(Id="infra0", Name="pod-infra", IsInfra=True,
             State=dict(Status="running", ExitCode=0, ConmonPid=infra, Pid=infra)),
        dict(Id="web0", Name="pod-web", IsInfra=False,
             State=dict(Status="running", ExitCode=0, ConmonPid=web, Pid=web)),
    ]))
elif args[:2] == ["container", "inspect"]:
    print("4242 4243")
elif args[:2] == ["pod", "stop"] or args[:2] == ["kube", "down"]:
    if os.path.exists(running):
        os.unlink(running)
    print(args[-1])
elif args[:2] == ["volume", "rm"]:
    if os.path.exists(os.path.join(state, "volume-in-use")):
        fail("volume is being used by the following container(s)", 2)
    print(args[-1])
elif args[:2] == ["volume", "create"]:
    print(args[-1])
elif args[:2] == ["pod", "rm"]:
    if os.path.exists(running):
        os.unlink(running)
    print(args[-1])
else:
    fail("unexpected call %r" % (args,))
'''

# A stand-in for nsenter, which the forwarder execs: records argv, listens on the socket.
FAKE_NSENTER = """\
#!{python}
import json, os, socket, sys, time
with open(os.path.join(os.environ["FAKE_PODMAN_STATE"], "calls"), "a") as log:
    log.write(json.dumps(["nsenter"] + sys.argv[1:]) + "\\n")
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[sys.argv.index("-l") + 1])
listener.listen(1)
time.sleep(120)
"""


def install(directory, state):
    """Write the stand-ins into ``directory`` and make ``state``, where they record their
    calls; return the environment they need besides ``directory`` first on PATH."""
    directory, state = Path(directory), Path(state)
    directory.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    for name, text in (("podman", FAKE_PODMAN), ("nsenter", FAKE_NSENTER)):
        script = directory / name
        script.write_text(text.format(python=sys.executable))
        script.chmod(0o755)
    return {"FAKE_PODMAN_STATE": str(state)}


def kill_forwarders(pidfiles):
    """Kill the forwarders a test started, by the pids in their pidfiles (nothing else)."""
    for pidfile in pidfiles:
        try:
            pid = int(Path(pidfile).read_text())
            os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
