#!/usr/bin/env python3
"""Benchmark of site.yml on one lab host with 1, 10 and 30 hostings.

For each count N, on a freshly booted lab host (lab/labctl up):
  1. first converge of N hostings (host role, hostings, ingress with ACME from Pebble);
  2. no-op re-runs, three by default, the median (each must report changed=0);
  3. one hosting changed among N (its env file), the whole site.yml;
  4. the same change converged alone (-e webhosting_hosting_limit=NAME), then also with
     the host role skipped (--skip-tags host);
  5. memory per idle hosting: PSS (/proc/PID/smaps_rollup) of every process of the
     hosting user and its subordinate ids, split into the hosting's overhead (user
     manager, conmon, pause/infra, forwarder, network helper) and the tenant's app.

Every hosting runs the lab image registry.example.test:5000/lab/httpd:1 (busybox httpd)
from the lab registry with auth, one socket port, a hostPath volume.

    .venv/bin/python benchmarks/bench_hostings.py [--counts 1,10,30] [--release bookworm]
        [--host bench-hostings] [--keep] [--workdir DIR]

Prints one line per measurement and a JSON summary at the end. Needs root (labctl) and
the virtualenv (make venv collection). Figures go to docs/benchmarks.md.
Targets: no-op re-run of 30 hostings <= 60 s (issue 4), of 100 <= 30 s; one changed
hosting <= 15 s; <= 8 MB PSS per idle hosting for everything the product runs as the
hosting user (issue 32).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LABCTL = ROOT / "lab" / "labctl"
IMAGE = "registry.example.test:5000/lab/httpd:1"
FIRST_UID = 20001
# how many of the slowest tasks of each run are listed
SLOWEST = 8

# Every process whose real uid is the hosting user is the product's overhead, whatever its
# name (the user manager, the supervisor, conmon, the network helper, aardvark-dns, dbus,
# the forwarder); only the processes in its subordinate uid range are the tenant's app.
# The names below only split the overhead into parts for the table; an unknown name is
# "other", still overhead (issue 32: the benchmark filed the supervisor, aardvark-dns and
# dbus-daemon under the app).
PARTS = {
    "systemd": "user manager",
    "(sd-pam)": "user manager",
    "python3": "supervisor",
    "userpod": "supervisor",
    "conmon": "conmon",
    "catatonit": "pause/infra",
    "podman": "podman",
    "systemd-socket-": "forwarder",
    "slirp4netns": "network helper",
    "pasta": "network helper",
    "pasta.avx2": "network helper",
    "rootlessport": "network helper",
    "rootlessport-ch": "network helper",
    "aardvark-dns": "aardvark-dns",
    "dbus-daemon": "dbus",
}


def hosting(i, password_file):
    name = f"h{i:02d}"
    return {
        "name": name,
        "uid": FIRST_UID + i,
        "gid": FIRST_UID + i,
        "domains": [f"{name}.example.test"],
        "registry": {
            "user": "labuser",
            "password": "{{ lookup('ansible.builtin.file', '" + password_file + "') }}",
        },
        "env_files": {"web": {"GREETING": f"hello from {name}"}},
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
                        "volumeMounts": [
                            {"name": "www", "mountPath": "/www/site", "readOnly": True}
                        ],
                    }
                ],
                "volumes": [{"name": "www", "hostPath": {"path": "/www", "type": "Directory"}}],
            },
        },
    }


def write_inventory(directory, host, count):
    password_file = f"/var/lib/webhosting-pods-lab/hosts/{host}/registry-password"
    inv = {
        "all": {
            "children": {
                "pod_hosts": {
                    "hosts": {host: {}},
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
        "webhosting_hostings": [hosting(i, password_file) for i in range(1, count + 1)],
    }
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(inv))
    (directory / "group_vars" / "pod_hosts.yml").write_text(yaml.safe_dump(group_vars))
    return directory / "hosts.yml", group_vars


def playbook(inventory, *args):
    env = dict(os.environ)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{ROOT / 'lab' / 'bin'}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    t0 = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "site.yml"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - t0
    try:
        report = json.loads(proc.stdout)
        stats = report["stats"]
    except (ValueError, KeyError):
        report, stats = {}, {}
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"ansible-playbook {' '.join(args)} failed ({proc.returncode})")
    (stat,) = stats.values()
    stat = dict(stat)
    # which tasks changed something (a no-op run must list none)
    stat["changed_tasks"] = sorted(
        {
            task["task"]["name"]
            for play in report.get("plays", [])
            for task in play.get("tasks", [])
            if any(r.get("changed") for r in task["hosts"].values())
        }
    )
    # where the time of the run went: its slowest tasks (the json callback's durations)
    durations = []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            duration = task["task"].get("duration") or {}
            if duration.get("start") and duration.get("end"):
                seconds = (_when(duration["end"]) - _when(duration["start"])).total_seconds()
                durations.append((round(seconds, 1), task["task"]["name"]))
    stat["slowest_tasks"] = sorted(durations, reverse=True)[:SLOWEST]
    return elapsed, stat


def _when(stamp):
    return datetime.datetime.fromisoformat(stamp.rstrip("Z"))


def lab(host, script):
    return subprocess.run(
        [str(LABCTL), "exec", host, "--", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def memory(host, hostings):
    """PSS in kB per hosting, split by role of the process."""
    out = lab(
        host,
        "for p in /proc/[0-9]*; do"
        " u=$(awk '/^Uid:/ {print $2}' $p/status 2>/dev/null) || continue;"
        " c=$(cat $p/comm 2>/dev/null) || continue;"
        " k=$(awk '/^Pss:/ {print $2}' $p/smaps_rollup 2>/dev/null);"
        ' [ -n "$k" ] && echo "${p#/proc/} $u $k $c"; done; echo ---; cat /etc/subuid',
    )
    procs, subuid = out.split("---\n")
    ranges = {}
    for line in subuid.splitlines():
        name, start, count = line.split(":")
        ranges[name] = (int(start), int(start) + int(count))
    result = {}
    for h in hostings:
        lo, hi = ranges[h["name"]]
        parts = {}
        for line in procs.splitlines():
            _pid, uid, pss, comm = line.split(" ", 3)
            uid = int(uid)
            if uid == h["uid"]:
                role = "overhead: " + PARTS.get(comm, "other (" + comm + ")")
            elif lo <= uid < hi:
                role = "app"
            else:
                continue
            parts[role] = parts.get(role, 0) + int(pss)
        result[h["name"]] = parts
    return result


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def run_count(count, args):
    host = args.host
    subprocess.run([str(LABCTL), "down", host], check=True, capture_output=True)
    cmd = [str(LABCTL), "up", host, "--release", args.release]
    subprocess.run(cmd, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as scratch:
        # --workdir keeps the inventory, to re-run or profile site.yml on the kept host
        tmp = args.workdir or scratch
        inventory, group_vars = write_inventory(Path(tmp), host, count)
        result = {"hostings": count, "release": args.release}
        result["first_converge_s"], stat = playbook(inventory)
        print(f"{count:3d} hostings: first converge {result['first_converge_s']:.1f} s {stat}")
        # the median of several no-op runs: one run on a shared machine varies by +-15 %
        runs = []
        for _ in range(args.noop_runs):
            elapsed, stat = playbook(inventory)
            runs.append(elapsed)
            result["noop_changed"] = max(result.get("noop_changed", 0), stat.get("changed", 0))
            print(f"{count:3d} hostings: no-op re-run {elapsed:.1f} s {stat}")
        result["noop_s"], result["noop_runs_s"] = median(runs), [round(r, 1) for r in runs]
        print(f"{count:3d} hostings: no-op re-run, median {result['noop_s']:.1f} s of {runs}")
        if args.memory_only:
            return idle_memory(host, group_vars, result, count, args)
        # One hosting changed among N: its env file gets a new value.
        target = group_vars["webhosting_hostings"][count // 2]
        target["env_files"]["web"]["GREETING"] = "changed"
        (Path(tmp) / "group_vars" / "pod_hosts.yml").write_text(yaml.safe_dump(group_vars))
        result["one_changed_s"], stat = playbook(inventory)
        print(f"{count:3d} hostings: one changed, whole run {result['one_changed_s']:.1f} s {stat}")
        target["env_files"]["web"]["GREETING"] = "changed again"
        (Path(tmp) / "group_vars" / "pod_hosts.yml").write_text(yaml.safe_dump(group_vars))
        result["one_changed_limit_s"], stat = playbook(
            inventory, "-e", f"webhosting_hosting_limit={target['name']}"
        )
        print(
            f"{count:3d} hostings: one changed, converged alone "
            f"{result['one_changed_limit_s']:.1f} s {stat}"
        )
        target["env_files"]["web"]["GREETING"] = "changed a third time"
        (Path(tmp) / "group_vars" / "pod_hosts.yml").write_text(yaml.safe_dump(group_vars))
        result["one_changed_limit_skip_host_s"], stat = playbook(
            inventory, "-e", f"webhosting_hosting_limit={target['name']}", "--skip-tags", "host"
        )
        print(
            f"{count:3d} hostings: one changed, converged alone without the host role "
            f"{result['one_changed_limit_skip_host_s']:.1f} s {stat}"
        )
        return idle_memory(host, group_vars, result, count, args)


def idle_memory(host, group_vars, result, count, args):
    """Memory per idle hosting (after --settle seconds), into ``result``; the lab host is
    taken down unless --keep."""
    time.sleep(args.settle)
    mem = memory(host, group_vars["webhosting_hostings"])
    overhead = [sum(v for k, v in p.items() if k != "app") for p in mem.values()]
    total = [sum(p.values()) for p in mem.values()]
    result["idle_overhead_kb_median"] = median(overhead)
    result["idle_total_kb_median"] = median(total)
    # the parts of the median hosting (by overhead), each the median over all hostings
    result["idle_parts_kb_median"] = {
        part: median([p.get(part, 0) for p in mem.values()])
        for part in sorted({k for p in mem.values() for k in p})
    }
    print(
        f"{count:3d} hostings: per idle hosting PSS overhead {median(overhead) / 1024:.1f} MB,"
        f" with the app {median(total) / 1024:.1f} MB; parts (median kB):"
        f" {result['idle_parts_kb_median']}"
    )
    if not args.keep:
        subprocess.run([str(LABCTL), "down", host], check=True, capture_output=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,30")
    parser.add_argument("--release", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--host", default="bench-hostings")
    parser.add_argument("--noop-runs", type=int, default=3, help="no-op runs (median)")
    parser.add_argument("--settle", type=int, default=20, help="seconds idle before memory")
    parser.add_argument("--keep", action="store_true", help="leave the last lab host up")
    parser.add_argument("--workdir", help="write the inventory here (kept) instead of a temp dir")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="first converge and one no-op run (--noop-runs), then the idle memory only",
    )
    args = parser.parse_args()
    results = [run_count(int(n), args) for n in args.counts.split(",")]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
