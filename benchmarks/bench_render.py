#!/usr/bin/env python3
"""Benchmark of the policy engine: render 1,000 varied tenant pod specs.

Builds a hosting tree in a temporary directory (data directories, env files), generates
1,000 different valid pod specs (1 to 4 containers, env lists, ports, hostPath and emptyDir
volumes, pod- and container-level security contexts, ignored fields that cause warnings),
then times ``render_pod`` over all of them, and ``render_pod`` + ``dump_pod`` (what
``userpod render`` does).  Spec generation and the policy are outside the timing.

    .venv/bin/python benchmarks/bench_render.py [--count 1000] [--rounds 5]

Each round renders all the specs; the best round and the median round are printed (the
lab VMs are shared, so single rounds vary by +-30 %).

Figures are recorded in docs/benchmarks.md (section "Policy engine"); target >= 1,000 specs/s.
"""

import argparse
import os
import platform
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))

import pod_policy  # noqa: E402
import yaml  # noqa: E402

IMAGES = [
    "nginx",
    "nginx:1.27",
    "docker.io/library/redis:7",
    "quay.io/shop/app:2.1",
    "registry.git.autistici.org/ai3/docker/static-content:latest",
    "ghcr.io/example/worker@sha256:" + "ab" * 32,
]
DIRS = ["data/app", "data/www", "data/db", "data/cache/a", "www", "logs"]


def make_hosting(base):
    for sub in DIRS + ["private", "tmp/run"]:
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    for container in ("c0", "c2"):
        with open(os.path.join(base, "private", "bench-%s.env" % container), "w") as handle:
            handle.write("# generated\nDB_PASSWORD=secret\nDB_HOST=db.internal\n\nTZ=UTC\n")
    return {
        "name": "bench",
        "volumes_base_dir": base,
        "volumes_containers_gid_share": True,
        "container_env_dir": os.path.join(base, "private"),
        "tmp_dir": os.path.join(base, "tmp"),
        "socket_ports": {8080: {"dir": os.path.join(base, "tmp", "run")}},
        "exposed_ports": ["8443/tcp"],
        "pidfile": os.path.join(base, "pod.pid"),
        "default_run_as_user": 1000,
        "resources": {"cpu": "1", "memory": "512Mi"},
    }


def make_spec(rng):
    """One tenant pod: mostly 1-2 containers (up to 4), a handful of env entries (up to 24),
    0-4 volumes, optional security contexts, commands and fields that cause warnings."""
    volumes = []
    for i in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        if rng.random() < 0.6:
            volume = {"hostPath": {"path": "/" + rng.choice(DIRS), "type": "Directory"}}
        else:
            volume = {"emptyDir": {"medium": "Memory", "sizeLimit": "%dMi" % rng.randint(1, 512)}}
        volume["name"] = "vol%d" % i
        volumes.append(volume)
    containers = []
    for c in range(rng.choice([1, 1, 1, 1, 1, 2, 2, 2, 3, 4])):
        container = {
            "name": "c%d" % c,
            "image": rng.choice(IMAGES),
            "env": [
                {"name": "VAR_%d" % e, "value": "value-%d-%d" % (c, rng.randint(0, 10**6))}
                for e in range(rng.choice([0, 1, 2, 3, 4, 6, 8, 12, 24]))
            ],
        }
        if c == 0:
            container["ports"] = [{"containerPort": 8080, "protocol": "TCP"}]
        mounts = rng.sample(volumes, rng.randint(0, len(volumes)))
        if mounts:
            container["volumeMounts"] = [
                {
                    "name": v["name"],
                    "mountPath": "/mnt/%s" % v["name"],
                    "readOnly": rng.random() < 0.3,
                }
                for v in mounts
            ]
        if rng.random() < 0.5:
            container["securityContext"] = {
                "runAsUser": rng.randint(1000, 2000),
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            }
        if rng.random() < 0.3:
            container["command"] = ["/bin/sh", "-c", "exec app --port 8080"]
        if rng.random() < 0.1:
            container["resources"] = {"limits": {"memory": "64Gi"}}  # ignored: a warning
        if c == 1 and rng.random() < 0.3:
            container["ports"] = [{"containerPort": 443, "hostPort": 8443}]
        containers.append(container)
    spec = {"containers": containers, "volumes": volumes}
    if rng.random() < 0.3:
        spec["securityContext"] = {"runAsUser": 1500, "runAsGroup": 1500}
    if rng.random() < 0.2:
        spec["restartPolicy"] = "OnFailure"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench"}, "spec": spec}
    if rng.random() < 0.1:
        pod["metadata"]["annotations"] = {"x": "y"}  # ignored: a warning
    return yaml.safe_dump(pod, sort_keys=rng.random() < 0.5)


def timed(function, texts, policy, rounds):
    """(wall seconds, CPU seconds) of each round, sorted by wall time.  CPU time is
    reported too: on a shared VM the wall clock includes other tenants and steal time."""
    times = []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for text in texts:
            function(text, policy)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return sorted(times)


def render_only(text, policy):
    pod_policy.render_pod(text, policy)


def render_and_dump(text, policy):
    pod_policy.dump_pod(pod_policy.render_pod(text, policy).pod)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="specs to render (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-hosting-") as base:
        policy = pod_policy.load_policy(make_hosting(base))
        texts = [make_spec(rng) for _ in range(args.count)]
        warned = sum(1 for text in texts if pod_policy.render_pod(text, policy).warnings)
        sizes = sorted(len(text) for text in texts)
        containers = sum(len(yaml.safe_load(text)["spec"]["containers"]) for text in texts)
        render_times = timed(render_only, texts, policy, args.rounds)
        dump_times = timed(render_and_dump, texts, policy, args.rounds)

    print(
        "python %s, PyYAML %s (libyaml %s), %s, %d CPUs"
        % (
            platform.python_version(),
            yaml.__version__,
            "yes" if getattr(yaml, "__with_libyaml__", False) else "no",
            platform.platform(),
            os.cpu_count(),
        )
    )
    print(
        "%d specs: %.0f bytes mean (%d to %d), %.1f containers mean, %d with warnings"
        % (
            args.count,
            sum(sizes) / len(sizes),
            sizes[0],
            sizes[-1],
            containers / len(sizes),
            warned,
        )
    )
    for label, times in (("render_pod", render_times), ("render_pod + dump_pod", dump_times)):
        median = times[len(times) // 2]
        print(
            "%-22s best %5.0f specs/s, median %5.0f specs/s wall; median %5.0f specs/s CPU"
            % (
                label + ":",
                args.count / times[0][0],
                args.count / median[0],
                args.count / median[1],
            )
        )
    print("(%d rounds each)" % args.rounds)


if __name__ == "__main__":
    main()
