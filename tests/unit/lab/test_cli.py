"""labkit.cli and the entry points: lab/labctl and lab/bin/nsenter (a link to it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import commands
from labkit.cli import build_parser
from labkit.nsenter_shim import nsenter_target

LAB = Path(__file__).resolve().parents[3] / "lab"
LABCTL = LAB / "labctl"
NSENTER_SHIM = LAB / "bin" / "nsenter"
COMMANDS = ("deps", "build", "up", "down", "reboot", "pid", "exec", "status", "inventory")


def parse(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    "argv, func, expected",
    [
        (["deps"], commands.cmd_deps, {}),
        (["build"], commands.cmd_build, {"release": "bookworm", "force": False}),
        (
            ["build", "--release", "trixie", "--force"],
            commands.cmd_build,
            {"release": "trixie", "force": True},
        ),
        (["up", "demo"], commands.cmd_up, {"name": "demo", "release": None, "cert_validity": 0}),
        (
            ["up", "t1", "--release", "trixie", "--cert-validity", "3600"],
            commands.cmd_up,
            {"name": "t1", "release": "trixie", "cert_validity": 3600},
        ),
        (["down", "--all"], commands.cmd_down, {"names": [], "all": True}),
        (["down", "a", "b"], commands.cmd_down, {"names": ["a", "b"], "all": False}),
        (["reboot", "demo"], commands.cmd_reboot, {"name": "demo"}),
        (["pid", "demo"], commands.cmd_pid, {"name": "demo"}),
        (["status"], commands.cmd_status, {}),
        (
            ["inventory", "a", "b"],
            commands.cmd_inventory,
            {"names": ["a", "b"], "release": None, "labctl": None},
        ),
        (
            ["inventory", "a", "--release", "trixie", "--labctl", "/opt/labctl"],
            commands.cmd_inventory,
            {"names": ["a"], "release": "trixie", "labctl": "/opt/labctl"},
        ),
    ],
)
def test_parse(argv, func, expected):
    args = parse(*argv)
    assert args.cmd == argv[0]
    assert args.func is func
    for key, value in expected.items():
        assert getattr(args, key) == value


@pytest.mark.parametrize(
    "argv",
    [["exec", "demo", "--", "ls", "-l"], ["exec", "demo", "ls", "-l"]],
)
def test_parse_exec_keeps_the_command(argv):
    args = parse(*argv)
    cmd = list(args.command)
    if cmd and cmd[0] == "--":  # what cmd_exec strips
        cmd = cmd[1:]
    assert args.name == "demo"
    assert cmd == ["ls", "-l"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["up"],
        ["up", "demo", "--release", "sid"],
        ["up", "demo", "--cert-validity", "soon"],
        ["build", "--release", "buster"],
        ["inventory"],
        ["pid"],
        ["reboot", "a", "b"],
    ],
)
def test_parse_rejects(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "usage: labctl" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, target",
    [
        (["-t", "42", "-a", "--", "ls"], "42"),
        (["--target", "42"], "42"),
        (["--target=42", "-m"], "42"),
        (["-t42"], "42"),
        (["-a", "-t", "7", "--", "-t", "8"], "7"),
        (["--", "-t", "5"], None),
        (["-t"], None),
        (["--target"], None),
        ([], None),
        (["-m/proc/1/ns/mnt", "ls"], None),
        (["-t", "1"], "1"),
        (["-t", "abc"], "abc"),
    ],
)
def test_nsenter_target(args, target):
    assert nsenter_target(args) == target


def run_entry(path, *args, env=None):
    return subprocess.run(
        [str(path), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=env,
    )


def test_labctl_help_from_anywhere():
    proc = run_entry(LABCTL, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: labctl [-h]")
    assert "labctl: build, boot and tear down the webhosting.pods lab hosts." in proc.stdout
    for command in COMMANDS:
        assert command in proc.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_labctl_help_matches_the_parser(command, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")  # the same line width here and in labctl
    with pytest.raises(SystemExit):
        parse(command, "--help")
    proc = run_entry(sys.executable, str(LABCTL), command, "--help", env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == capsys.readouterr().out


def test_labctl_usage_error():
    proc = run_entry(LABCTL, "up", "demo", "--release", "sid")
    assert proc.returncode == 2
    assert "invalid choice: 'sid'" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="labctl commands need root")
def test_labctl_error_is_one_line_and_status_1(tmp_path):
    env = dict(os.environ, LAB_STATE_DIR=str(tmp_path))
    proc = run_entry(LABCTL, "pid", "Bad!", env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "labctl: error: invalid lab host name 'Bad!': use a-z, 0-9 and '-', at most 32 characters\n"
    )
    proc = run_entry(LABCTL, "pid", "nohost", env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("labctl: error: lab host nohost is not up (no state in ")


def test_nsenter_link_points_at_labctl():
    assert NSENTER_SHIM.is_symlink()
    assert NSENTER_SHIM.resolve() == LABCTL.resolve()


@pytest.mark.parametrize("target", [["-t", "1"], ["--target=0"], ["-tabc"], ["--target", "--"]])
def test_nsenter_shim_refuses_pid_1_and_nonsense(target):
    # -m: should the shim ever pass this on, nsenter fails instead of running anything
    proc = run_entry(NSENTER_SHIM, *target, "-m", "--", "/bin/true")
    assert proc.returncode == 1
    assert "nsenter (labctl shim): refusing target" in proc.stderr
    assert "PID 1 is this machine" in proc.stderr


def test_ensure_inotify_raises_a_low_limit_only(tmp_path):
    from labkit import commands

    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    commands.ensure_inotify(str(limit), 1024)
    assert limit.read_text() == "1024\n"
    limit.write_text("8192\n")
    commands.ensure_inotify(str(limit), 1024)
    assert limit.read_text() == "8192\n"
    commands.ensure_inotify(str(tmp_path / "missing"), 1024)  # no such sysctl: left alone
