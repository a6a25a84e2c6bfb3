#!/usr/bin/env python3
"""Benchmark of playbooks/move.yml: the downtime of a hosting moved between two lab hosts,
by the size of its data.

Boots two lab hosts (the second shares the first's registry login and tenant keys:
labctl up --share-with), converges one hosting per size on the first with site.yml, fills
its data/ with incompressible bytes (from /dev/urandom, as the tenant's own files), then
moves each to the second host, one after the other, and reads the playbook's report:
files and bytes, archive size, downtime (from the stop on the old host to the new host's
first HTTPS answer). The whole run of the playbook is timed too.

    .venv/bin/python benchmarks/bench_move.py [--sizes 1,100,500] [--from-release bookworm]
        [--to-release trixie] [--keep]

Sizes in MiB. Prints one line per move and a JSON summary. Needs root (labctl) and the
virtualenv (make venv collection). Figures go to docs/benchmarks.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LABCTL = ROOT / "lab" / "labctl"
IMAGE = "registry.example.test:5000/lab/httpd:1"
OLD, NEW = "bench-move-a", "bench-move-b"


def hosting(name, uid):
    password = (
        "{{ lookup('ansible.builtin.file', '/var/lib/webhosting-pods-lab/hosts/'"
        " ~ inventory_hostname ~ '/registry-password') }}"
    )
    return {
        "name": name,
        "uid": uid,
        "gid": uid,
        "domains": [f"{name}.example.test"],
        "registry": {"user": "labuser", "password": password},
        "pod": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": IMAGE,
                        "ports": [{"containerPort": 8080}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [
                    {"name": "data", "hostPath": {"path": "/data", "type": "Directory"}}
                ],
            },
        },
    }


def write_inventory(directory, hostings):
    inventory = {
        "all": {
            "children": {
                "pod_hosts": {
                    "hosts": {OLD: {}, NEW: {}},
                    "vars": {"ansible_connection": "lab_nsenter"},
                }
            }
        }
    }
    group_vars = {
        "webhosting_policy_defaults": {
            "allowed_registries": ["registry.example.test:5000"],
            "default_run_as_user": 1000,
            "volumes_containers_gid_share": True,
        },
        "hosting_registry_server": "registry.example.test:5000",
        "ingress_acme_directory": "https://pebble.example.test:14000/dir",
    }
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    (directory / "host_vars").mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (directory / "group_vars" / "pod_hosts.yml").write_text(yaml.safe_dump(group_vars))
    (directory / "host_vars" / f"{OLD}.yml").write_text(
        yaml.safe_dump({"webhosting_hostings": hostings})
    )
    (directory / "host_vars" / f"{NEW}.yml").write_text(yaml.safe_dump({"webhosting_hostings": []}))
    return directory / "hosts.yml"


def ansible(inventory, playbook, *args):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{ROOT / 'lab' / 'bin'}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    t0 = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        raise SystemExit(f"{playbook.name} {' '.join(args)} failed ({proc.returncode})")
    return elapsed, proc.stdout


def lab(host, script):
    return subprocess.run(
        [str(LABCTL), "exec", host, "--", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,100,500", help="MiB of data per hosting")
    parser.add_argument("--from-release", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--to-release", default="trixie", choices=["bookworm", "trixie"])
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts up")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for name in (NEW, OLD):
        subprocess.run([str(LABCTL), "down", name], check=True, capture_output=True)
    # labctl's own output (and its error, if any) goes to stderr
    subprocess.run(
        [str(LABCTL), "up", OLD, "--release", args.from_release], check=True, stdout=sys.stderr
    )
    subprocess.run(
        [str(LABCTL), "up", NEW, "--release", args.to_release, "--share-with", OLD],
        check=True,
        stdout=sys.stderr,
    )
    hostings = [hosting(f"mv{size}", 21001 + i) for i, size in enumerate(sizes)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        inventory = write_inventory(Path(tmp), hostings)
        elapsed, _ = ansible(inventory, ROOT / "site.yml")
        print(f"converged both hosts in one site.yml run: {elapsed:.1f} s", flush=True)
        for size, h in zip(sizes, hostings):
            lab(
                OLD,
                f"head -c {size * 1048576} /dev/urandom > /srv/hostings/{h['name']}/data/blob"
                f" && chown {h['uid']}:{h['gid']} /srv/hostings/{h['name']}/data/blob",
            )
        for size, h in zip(sizes, hostings):
            elapsed, out = ansible(
                inventory,
                ROOT / "playbooks" / "move.yml",
                "-e",
                f"move_hosting={h['name']}",
                "-e",
                f"move_from={OLD}",
                "-e",
                f"move_to={NEW}",
            )
            report = " ".join(re.search(r"moved from .*?domains", out, re.S).group(0).split())
            numbers = re.search(
                r"(\d+) entries, (\d+) bytes of files.*archive (\d+) bytes; down for\s+([0-9.]+) s",
                report,
            )
            entries, data, archive, downtime = numbers.groups()
            result = {
                "data_mib": size,
                "entries": int(entries),
                "data_bytes": int(data),
                "archive_bytes": int(archive),
                "downtime_s": float(downtime),
                "playbook_s": round(elapsed, 1),
            }
            results.append(result)
            print(
                f"{h['name']}: {int(data) / 1048576:.1f} MiB of files ({entries} entries),"
                f" archive {int(archive) / 1048576:.1f} MiB, down for {downtime} s,"
                f" whole playbook {elapsed:.1f} s",
                flush=True,
            )
    if not args.keep:
        for name in (NEW, OLD):
            subprocess.run([str(LABCTL), "down", name], check=True, capture_output=True)
    print(json.dumps({"from": args.from_release, "to": args.to_release, "moves": results}))


if __name__ == "__main__":
    main()
