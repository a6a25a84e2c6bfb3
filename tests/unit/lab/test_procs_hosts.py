"""labkit.procs and labkit.hosts against a fake /proc: records, markers, the verified PID.

verify_host_pid is what stands between Ansible's nsenter and PID 1 (this machine): every
check it makes has a case here that must be refused.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lab_helpers import stat_line
from labkit import config, hosts, procs
from labkit.util import LabError


def test_proc_stat_reads_comm_state_ppid_and_start(lab):
    lab.add_proc(42, "nginx", ppid=7, start=123456, state="S")
    assert procs.proc_stat(42) == ("nginx", "S", 7, 123456)
    assert procs.proc_stat("42") == ("nginx", "S", 7, 123456)
    assert procs.proc_stat(43) is None
    assert procs.proc_stat("../etc") is None  # not a PID: no path is built from it


def test_proc_stat_of_this_process_in_the_real_proc():
    comm, state, ppid, start = procs.proc_stat(os.getpid())
    assert ppid == os.getppid()
    assert state in "RS"
    assert start > 0
    assert comm == open(f"/proc/{os.getpid()}/comm").read().rstrip("\n")


# comm is what a process calls itself (prctl): up to 15 bytes, any but NUL: ")", spaces,
# newlines and invalid UTF-8 included
@given(comm=st.binary(max_size=15).filter(lambda b: b"\0" not in b))
def test_proc_stat_survives_any_comm(tmp_path, monkeypatch, comm):
    monkeypatch.setattr(procs, "PROC", str(tmp_path))
    (tmp_path / "42").mkdir(exist_ok=True)
    line = stat_line(42, "COMM", 9, 77, "R").encode().replace(b"COMM", comm)
    (tmp_path / "42" / "stat").write_bytes(line)
    assert procs.proc_stat(42) == (comm.decode(errors="replace"), "R", 9, 77)


def test_proc_record_and_matches(lab):
    lab.add_proc(42, "pebble", start=100)
    rec = procs.proc_record(42)
    assert rec == {"pid": 42, "comm": "pebble", "start": 100}
    assert procs.proc_matches(rec)
    assert procs.proc_alive(42)
    assert not procs.proc_matches({**rec, "start": 101})  # PID reused by another process
    assert not procs.proc_matches({**rec, "comm": "bash"})
    assert not procs.proc_matches({"pid": 43, "comm": "pebble", "start": 100})
    assert not procs.proc_matches(None)
    assert not procs.proc_matches({})
    lab.add_proc(42, "pebble", start=100, state="Z")
    assert not procs.proc_matches(rec)
    assert not procs.proc_alive(42)
    assert procs.proc_record(43) is None


def test_children(lab):
    lab.add_proc(10, "systemd-nspawn")
    lab.add_proc(11, "systemd", ppid=10)
    lab.add_proc(12, "sh", ppid=10)
    lab.add_proc(13, "sleep", ppid=11)
    assert sorted(procs.children(10)) == [11, 12]
    assert procs.children(13) == []


def test_marked_pids_match_the_whole_marker(lab, tmp_path):
    hd = str(tmp_path / "hosts" / "demo")
    marker = f"{config.MARKER_ENV}={hd}"
    lab.add_proc(20, "pebble", environ=["PATH=/bin", marker])
    lab.add_proc(21, "registry", environ=[marker + "2"])  # host demo2
    lab.add_proc(22, "dns", environ=[f"X={marker}"])
    lab.add_proc(23, "pebble", environ=[marker], state="Z")
    lab.add_proc(os.getpid(), "python3", environ=[marker])  # labctl itself
    lab.add_proc(24, "debootstrap", environ=[f"{config.BUILD_MARKER_ENV}={hd}"])
    assert procs.marked_pids(hd) == [20]
    assert procs.marked_pids(hd, config.BUILD_MARKER_ENV) == [24]


def test_known_hosts_from_directories_and_processes(lab):
    for name in ("alpha", "beta", "Not_A_Host"):
        lab.host_dir(name).mkdir(parents=True)
    lab.add_proc(30, "systemd-nspawn", environ=[lab.marker("gamma")])  # directory gone
    lab.add_proc(31, "pebble", environ=[lab.marker("beta")])
    lab.add_proc(32, "pebble", environ=[f"{config.MARKER_ENV}=/elsewhere/hosts/delta"])
    lab.add_proc(33, "pebble", environ=[lab.marker("Bad_Name")])
    lab.add_proc(os.getpid(), "python3", environ=[lab.marker("epsilon")])
    assert hosts.known_hosts() == ["alpha", "beta", "gamma"]


def test_known_hosts_of_an_empty_lab(lab):
    assert hosts.known_hosts() == []


def test_state_round_trip(lab):
    assert hosts.load_state("demo") is None
    hosts.save_state("demo", {"release": "trixie", "phase": "ready"})
    assert hosts.load_state("demo") == {"release": "trixie", "phase": "ready"}
    path = lab.host_dir("demo") / "state.json"
    assert json.loads(path.read_text()) == {"release": "trixie", "phase": "ready"}
    path.write_text("{half a state")
    assert hosts.load_state("demo") is None


def test_host_paths(lab):
    assert hosts.host_dir("demo") == str(lab.state / "hosts" / "demo")
    assert hosts.host_rootfs("demo") == str(lab.state / "hosts" / "demo" / "rootfs")


# --------------------------------------------------------------------------
# verify_host_pid: the PID Ansible's nsenter may enter, or a refusal
# --------------------------------------------------------------------------


def test_verify_host_pid_of_a_running_host(lab):
    lab.running_host("demo", nspawn=4242, systemd=4243)
    assert hosts.verify_host_pid("demo") == 4243


def test_verify_host_pid_with_a_given_state(lab):
    st = lab.running_host("demo", nspawn=4242, systemd=4243)
    (lab.host_dir("demo") / "state.json").unlink()
    assert hosts.verify_host_pid("demo", st) == 4243


def edit_state(lab, **changes):
    path = lab.host_dir("demo") / "state.json"
    st = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            st[key] = None
        else:
            st[key].update(value)
    path.write_text(json.dumps(st))


def nspawn_gone(lab):
    (lab.proc / "4242" / "stat").unlink()


def nspawn_pid_reused(lab):
    lab.add_proc(4242, "systemd-nspawn", start=999, environ=[lab.marker("demo")])


def nspawn_zombie(lab):
    lab.add_proc(4242, "systemd-nspawn", start=500, state="Z", environ=[lab.marker("demo")])


def nspawn_unmarked(lab):
    lab.add_proc(4242, "systemd-nspawn", start=500, environ=["PATH=/bin"])


def nspawn_of_another_host(lab):
    lab.add_proc(4242, "systemd-nspawn", start=500, environ=[lab.marker("other")])


def systemd_pid_1(lab):
    lab.add_proc(1, "systemd", ppid=4242, start=501, root=lab.host_dir("demo") / "rootfs")
    edit_state(lab, systemd={"pid": 1})


def systemd_pid_is_labctl(lab):
    edit_state(lab, systemd={"pid": os.getpid()})


def systemd_pid_not_a_number(lab):
    edit_state(lab, systemd={"pid": "4243"})


def systemd_not_recorded(lab):
    edit_state(lab, systemd=None)


def systemd_gone(lab):
    (lab.proc / "4243" / "stat").unlink()


def systemd_pid_reused(lab):
    lab.add_proc(4243, "systemd", ppid=4242, start=777)


def not_systemd(lab):
    lab.add_proc(4243, "bash", ppid=4242, start=501)
    edit_state(lab, systemd={"comm": "bash"})


def not_a_child_of_nspawn(lab):
    lab.add_proc(4243, "systemd", ppid=77, start=501)


def another_root(lab):
    other = lab.root / "other-rootfs"
    other.mkdir()
    lab.add_proc(4243, "systemd", ppid=4242, start=501, root=other)


def root_unreadable(lab):
    (lab.proc / "4243" / "root").unlink()


def rootfs_missing(lab):
    (lab.host_dir("demo") / "rootfs").rmdir()


def machine_root(lab):
    rootfs = lab.host_dir("demo") / "rootfs"
    rootfs.rmdir()
    rootfs.symlink_to("/")
    lab.add_proc(4243, "systemd", ppid=4242, start=501, root="/")


def no_state(lab):
    (lab.host_dir("demo") / "state.json").unlink()


@pytest.mark.parametrize(
    "breakage, message",
    [
        (no_state, r"lab host demo is not up \(no state in .*/hosts/demo\)"),
        (systemd_not_recorded, r"lab host demo is not up \(boot not recorded\)"),
        (nspawn_gone, r"its systemd-nspawn, PID 4242, is gone"),
        (nspawn_pid_reused, r"its systemd-nspawn, PID 4242, is gone"),
        (nspawn_zombie, r"its systemd-nspawn, PID 4242, is gone"),
        (nspawn_unmarked, r"PID 4242 is not the systemd-nspawn labctl started"),
        (nspawn_of_another_host, r"PID 4242 is not the systemd-nspawn labctl started"),
        (systemd_pid_1, r"refusing PID 1$"),
        (systemd_pid_is_labctl, rf"refusing PID {os.getpid()}$"),
        (systemd_pid_not_a_number, r"refusing PID '4243'"),
        (systemd_gone, r"its systemd, PID 4243, is gone"),
        (systemd_pid_reused, r"its systemd, PID 4243, is gone"),
        (not_systemd, r"PID 4243 is 'bash', not systemd"),
        (not_a_child_of_nspawn, r"PID 4243 is not a child of its systemd-nspawn \(4242\)"),
        (another_root, r"the root of PID 4243 is not .*/hosts/demo/rootfs"),
        (root_unreadable, r"cannot check the root of PID 4243"),
        (rootfs_missing, r"cannot check the root of PID 4243"),
        (machine_root, r"PID 4243 runs in this machine's root: refusing"),
    ],
)
def test_verify_host_pid_refuses(lab, breakage, message):
    lab.running_host("demo", nspawn=4242, systemd=4243)
    breakage(lab)
    with pytest.raises(LabError, match=message):
        hosts.verify_host_pid("demo")


def test_verify_host_pid_checks_the_name_first(lab):
    with pytest.raises(LabError, match="invalid lab host name '../demo'"):
        hosts.verify_host_pid("../demo")


@pytest.mark.skipif(os.geteuid() != 0, reason="the shim checks lab hosts only as root")
def test_nsenter_shim_refuses_a_lab_host_that_fails_verification(lab):
    """A target that is a lab host's recorded systemd but no longer verifies: exit 1."""
    lab.running_host("demo", nspawn=4242, systemd=4243)
    nspawn_gone(lab)
    code = (
        "import sys; from labkit import procs; from labkit.nsenter_shim import nsenter_shim;"
        f"procs.PROC = {str(lab.proc)!r};"
        # -m: should the shim pass it on anyway, nsenter fails instead of running anything
        "sys.exit(nsenter_shim(['-t', '4243', '-m', '--', '/bin/true']))"
    )
    env = dict(os.environ, LAB_STATE_DIR=str(lab.state), PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "nsenter (labctl shim): lab host demo is not up (its systemd-nspawn, PID 4242, is gone)\n"
    )


# --------------------------------------------------------------------------
# cgroups of commands run inside a host
# --------------------------------------------------------------------------


def write_cgroup(lab, pid, text):
    lab.add_proc(pid, "systemd")
    (lab.proc / str(pid) / "cgroup").write_text(text)


def test_host_cgroup_dirs_inside_the_lab_tree(lab):
    parent = config.CGROUP_PARENT
    write_cgroup(
        lab,
        4243,
        f"12:pids:/{parent}/demo/init.scope\n"
        f"1:name=systemd:/{parent}/demo/init.scope\n"
        f"0::/{parent}/demo/init.scope\n",
    )
    assert hosts.host_cgroup_dirs(4243) == [
        f"/sys/fs/cgroup/systemd/{parent}/demo/labctl-exec",
        f"/sys/fs/cgroup/unified/{parent}/demo/labctl-exec",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/user.slice/session-1.scope",
        "/../../..",
        "/",
        "/webhosting-pods-lab/demo/init.scope",
        "/{parent}0/demo/init.scope",
        "/{parent}",
    ],
)
def test_host_cgroup_dirs_leave_other_trees_alone(lab, path):
    # the lab here is a second one (its own parent), so even the default lab's tree is foreign
    assert config.CGROUP_PARENT != "webhosting-pods-lab"
    path = path.format(parent=config.CGROUP_PARENT)
    write_cgroup(lab, 4243, f"1:name=systemd:{path}\n0::{path}\n")
    assert hosts.host_cgroup_dirs(4243) == []


def test_host_cgroup_dirs_of_a_process_without_cgroup_file(lab):
    lab.add_proc(4243, "systemd")
    assert hosts.host_cgroup_dirs(4243) == []


def test_join_cgroups_writes_the_pid_and_reports_failures(tmp_path):
    good = tmp_path / "a" / "labctl-exec"
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = blocker / "labctl-exec"
    failed = hosts.join_cgroups([str(good), str(bad)])
    assert (good / "cgroup.procs").read_text() == str(os.getpid())
    assert [d for d, _ in failed] == [str(bad)]
    assert isinstance(failed[0][1], OSError)


def test_nsenter_argv():
    assert hosts.nsenter_all(42, ["ls", "-l"]) == ["nsenter", "-t", "42", "-a", "--", "ls", "-l"]
    assert hosts.nsenter_net("42", ["ss"]) == ["nsenter", "-t", "42", "-n", "--", "ss"]
    with pytest.raises(ValueError):
        hosts.nsenter_all("1 -a", ["sh"])


def test_parse_listening():
    out = (
        "udp   UNCONN 0      0          127.0.0.1:53        0.0.0.0:*\n"
        "tcp   LISTEN 0      4096       127.0.0.1:8055      0.0.0.0:*\n"
        "tcp   LISTEN 0      511            [::1]:14000        [::]:*\n"
        "tcp   LISTEN 0      128                *:5000           *:*\n"
        "tcp   LISTEN 0      128                *:*              *:*\n"
        "garbage\n"
        "\n"
    )
    assert hosts.parse_listening(out) == {
        ("udp", 53),
        ("tcp", 8055),
        ("tcp", 14000),
        ("tcp", 5000),
    }


# --------------------------------------------------------------------------
# stop_pids with real processes: only verified records are signalled
# --------------------------------------------------------------------------


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    # wait until the child has exec'd sleep (its comm is what a record holds)
    for _ in range(500):
        if (procs.proc_stat(proc.pid) or ("",))[0] == "sleep":
            break
        time.sleep(0.01)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_stop_pids_stops_a_verified_process(sleeper):
    rec = procs.proc_record(sleeper.pid)
    assert rec["comm"] == "sleep"
    procs.stop_pids([rec], "test sleeper")
    assert procs.proc_stat(sleeper.pid) is None  # stopped and reaped by stop_pids


def test_stop_pids_leaves_a_process_whose_record_does_not_match(sleeper):
    rec = procs.proc_record(sleeper.pid)
    procs.stop_pids([{**rec, "start": rec["start"] + 1}], "test sleeper")
    procs.stop_pids([{**rec, "comm": "pebble"}], "test sleeper")
    assert sleeper.poll() is None
    assert procs.proc_alive(sleeper.pid)


# --------------------------------------------------------------------------
# start_logged: how labctl starts systemd-nspawn and the lab services
# --------------------------------------------------------------------------


def start_sh(script, log, comm, **kw):
    return procs.start_logged(
        ["sh", "-c", script], str(log), env={"PATH": "/usr/bin:/bin"}, comm=comm, timeout=10, **kw
    )


def test_start_logged_returns_once_the_command_runs(tmp_path):
    log = tmp_path / "sleep.log"
    log.write_text("before\n")
    proc = start_sh(
        "echo started; exec sleep 60",
        log,
        "sleep",
        what="the sleeper",
        header_argv=["sleep", "60"],
        cwd=str(tmp_path),
    )
    try:
        assert procs.proc_stat(proc.pid)[0] == "sleep"
        assert os.getsid(proc.pid) == proc.pid  # its own session
        lines = log.read_text().splitlines()
        assert lines[:2] == ["before", ""]  # appended
        assert lines[2].startswith("=== ") and lines[2].endswith(" sleep 60")
        assert lines[3] == "started"
    finally:
        proc.kill()
        proc.wait()


def test_start_logged_reports_a_command_that_exits_with_its_log(tmp_path):
    log = tmp_path / "exits.log"
    with pytest.raises(LabError) as exc:
        start_sh("echo boom; exit 3", log, "never", what="the service")
    head, log_tail = str(exc.value).split("\n", 1)
    assert head == f"the service did not start; log {log}:"
    assert log_tail.endswith("\nboom")
