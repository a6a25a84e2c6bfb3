#!/usr/bin/env python3
"""Converge lab hosts with the previous release of the collection.

The release is named in previous-release beside this file (a tag and its commit). Its
tree is taken from this repository's history with `git archive` (no network), unpacked
as a collection (ansible_collections/webhosting/pods) in a temporary directory, and its
own site.yml runs against the lab hosts with the collections path pointing there first;
the lab connection (lab_nsenter) and the toolchain are this checkout's.

Usage: previous.py INVENTORY HOST...   (exit status: ansible-playbook's)
"""

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]


def previous_release():
    """(name, commit) from previous-release: the first line that is not a comment."""
    for line in (HERE / "previous-release").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, commit = line.split()
            return name, commit
    raise SystemExit("previous-release names no release")


def unpack(commit, root):
    """The tree of `commit` as ansible_collections/webhosting/pods below root."""
    archive = subprocess.run(
        ["git", "-C", str(PROJECT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    target = Path(root) / "ansible_collections" / "webhosting" / "pods"
    target.mkdir(parents=True)
    # this repository's own tree; the "data" filter where the Python has it (3.11.4+)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, **safe)
    return target


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    inventory, hosts = argv[1], argv[2:]
    name, commit = previous_release()
    bundled = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="webhosting-pods-previous-") as root:
        collection = unpack(commit, root)
        print(f"previous release {name} ({commit[:12]}) in {collection}", flush=True)
        env = dict(os.environ)
        env["ANSIBLE_COLLECTIONS_PATH"] = f"{root}:{bundled}"
        env.setdefault("ANSIBLE_CONFIG", str(PROJECT / "ansible.cfg"))
        env["ANSIBLE_ROLES_PATH"] = str(collection / "roles")
        proc = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(collection / "site.yml"),
             "--limit", ",".join(hosts)],
            env=env,
            check=False,
        )  # fmt: skip
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
