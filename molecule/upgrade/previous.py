#!/usr/bin/env python3
"""Converge lab hosts with the previous release of the collection.

The release is named in previous-release beside this file (a tag and its commit). Its
tree is taken from this repository's history with `git archive` (no network), unpacked
as a collection (ansible_collections/webhosting/pods) in a temporary directory, and its
own site.yml runs against the lab hosts with the collections path pointing there first;
the lab connection (lab_nsenter) and the toolchain are this checkout's.

Hosting keys the previous release does not know (its roles/hosting argument spec refuses
them, e.g. `sftp`, new in 0.2.0) are left out of its run, through an extra-vars file with
the inventory's hostings without them: an admin's inventory of that release had none. So
are policy keys its engine does not know (its `_POLICY_KEYS`, e.g. `container_log_max`),
in each hosting's `policy` and in `webhosting_policy_defaults`.

Usage: previous.py INVENTORY HOST...   (exit status: ansible-playbook's)
"""

import ast
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
GROUP_VARS = HERE / "inventory" / "group_vars" / "pod_hosts.yml"


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


def policy_keys(collection):
    """The policy keys the engine of the release in `collection` accepts (its
    `_POLICY_KEYS` tuple, wherever in plugins/module_utils it is)."""
    for path in sorted((collection / "plugins" / "module_utils").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "_POLICY_KEYS" for t in node.targets
            ):
                return set(ast.literal_eval(node.value))
    raise SystemExit("no _POLICY_KEYS in the previous release")


def known_vars(collection):
    """The inventory's hostings and policy defaults with only the keys the release in
    `collection` knows (extra vars for its run)."""
    spec = yaml.safe_load((collection / "roles/hosting/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]["hosting_hostings"]["options"]
    keys = policy_keys(collection)
    group_vars = yaml.safe_load(GROUP_VARS.read_text())
    hostings = []
    for hosting in group_vars["webhosting_hostings"]:
        kept = {k: v for k, v in hosting.items() if k in options}
        if isinstance(kept.get("policy"), dict):
            kept["policy"] = {k: v for k, v in kept["policy"].items() if k in keys}
        hostings.append(kept)
    defaults = group_vars.get("webhosting_policy_defaults") or {}
    return {
        "webhosting_hostings": hostings,
        "webhosting_policy_defaults": {k: v for k, v in defaults.items() if k in keys},
    }


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
        extra = Path(root) / "hostings.json"
        extra.write_text(json.dumps(known_vars(collection)))
        proc = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(collection / "site.yml"),
             "--limit", ",".join(hosts), "-e", f"@{extra}"],
            env=env,
            check=False,
        )  # fmt: skip
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
