# SPDX-License-Identifier: GPL-3.0-or-later
"""Small helpers: messages, running commands, files, locks."""

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile

from . import config
from .config import INNER_PATH


class LabError(Exception):
    """A failure labctl reports as one clear message and exit status 1."""


def say(msg):
    print(f"labctl: {msg}", flush=True)


def warn(msg):
    print(f"labctl: warning: {msg}", file=sys.stderr, flush=True)


def clean_env(extra=None):
    env = {"PATH": INNER_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    if extra:
        env.update(extra)
    return env


def run(
    argv,
    check=True,
    capture=False,
    env=None,
    timeout=None,
    input=None,
    log=None,
    what=None,
    preexec_fn=None,
    cwd=None,
):
    """Run argv (a list).  capture: return stdout text.  log: append output to file."""
    assert isinstance(argv, (list, tuple)), argv
    if config.VERBOSE:
        print("+ " + " ".join(argv), file=sys.stderr, flush=True)
    kwargs = {
        "env": env if env is not None else clean_env(),
        "timeout": timeout,
        "preexec_fn": preexec_fn,
        "cwd": cwd,
    }
    if input is not None:
        kwargs["input"] = input if isinstance(input, bytes) else input.encode()
    else:
        kwargs["stdin"] = subprocess.DEVNULL
    try:
        if log:
            with open(log, "ab") as fh:
                fh.write(("\n+ " + " ".join(argv) + "\n").encode())
                fh.flush()
                proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, **kwargs)
            out = ""
        elif capture:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
            out = proc.stdout.decode(errors="replace")
        else:
            proc = subprocess.run(argv, **kwargs)
            out = ""
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found (run `labctl deps`)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what or argv[0]}: timed out after {timeout} s") from None
    if check and proc.returncode != 0:
        detail = ""
        if capture:
            detail = (proc.stderr or b"").decode(errors="replace").strip()
        elif log:
            detail = f"see {log}:\n" + tail(log, 25)
        raise LabError(
            f"{what or ' '.join(argv)}: exit status {proc.returncode}"
            + (f"\n{detail}" if detail else "")
        )
    if capture:
        return (
            out if check else (proc.returncode, out, (proc.stderr or b"").decode(errors="replace"))
        )
    return proc.returncode


def tail(path, lines=25):
    try:
        with open(path, "rb") as fh:
            data = fh.read()[-20000:].decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def write_file(path, data, mode=0o644):
    """Write atomically (temp file + rename)."""
    if isinstance(data, str):
        data = data.encode()
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_text(path, default=None):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return default


def read_json(path):
    """The JSON document in path, or None if the file is missing, empty or not JSON."""
    data = read_text(path)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


@contextlib.contextmanager
def flock(path, shared=False, what="lock"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for {what} ({path})")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def fmt_s(seconds):
    return f"{seconds:.1f} s"


def replace_file(path, text):
    """Replace path (file or symlink) by a regular file; path is in a tree we own."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    write_file(path, text)
