#!/usr/bin/env python3
"""The HTTP path into a pod, three ways, in one run (docs/benchmarks.md).

    benchmarks/bench_ingress.py LAB_HOST [--rounds 3] [--duration 10] [--connections 64]

On a lab host that is up (`lab/labctl up LAB_HOST`), converge one extra hosting `bench`
with `site.yml` (its pod also publishes 127.0.0.1:18080 on the host, which only this
benchmark's policy allows), then measure a small page (index.html, 115 bytes) with wrk:

- socket: nginx -> unix socket tmp/run/8080 -> the role's forwarder -> the pod
- port:   nginx -> 127.0.0.1:18080 (rootlessport on Debian 12, pasta on 13) -> the same pod
- direct: wrk inside the pod's network namespace -> the pod's httpd
- socket+tls: like socket, through HTTPS (what visitors use; TLS costs nginx CPU)

Both nginx paths are plain-HTTP servers on 127.0.0.1 whose `location /` is copied from
the hosting's rendered server, so only the upstream differs. The rounds interleave the
paths. wrk runs from this machine inside the lab host's (or the pod's) network namespace.
Non-2xx answers are counted by a wrk script. Exit status 1 when a target is missed:
socket >= 1.5 x port and >= 0.9 x direct requests/s, and no non-2xx answer.
The nginx servers are removed at the end; the hosting stays (`state: absent` removes it).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LABCTL = PROJECT / "lab" / "labctl"
NSENTER = "/usr/bin/nsenter"
NAME = "bench"
UID = 10090
PORT = 8080
HOST_PORT = 18080
BENCH_CONF = "/etc/nginx/conf.d/webhosting-pods-bench.conf"
LISTEN = {"socket": 18001, "port": 18002, "socket+tls": 18003}

WRK_SCRIPT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), n,
    e.connect, e.read, e.write, e.timeout))
end
"""


def run(argv, **kw):
    kw.setdefault("check", True)
    return subprocess.run(argv, text=True, capture_output=True, **kw)


def lab_exec(host, script, check=True):
    return run([str(LABCTL), "exec", host, "--", "/bin/sh", "-c", script], check=check)


def inventory(tmp, host):
    """An inventory for the lab host with the bench hosting (and nothing else)."""
    password = (
        "{{ lookup('ansible.builtin.file', '/var/lib/webhosting-pods-lab/hosts/'"
        " ~ inventory_hostname ~ '/registry-password') }}"
    )
    hosts = {
        "all": {
            "children": {
                "pod_hosts": {
                    "hosts": {host: {}},
                    # lab/connection_plugins/lab_nsenter.py (ansible.cfg): it asks
                    # `labctl pid` itself and fails closed.
                    "vars": {"ansible_connection": "lab_nsenter", "ansible_labctl": str(LABCTL)},
                }
            }
        }
    }
    group_vars = {
        "webhosting_policy_defaults": {
            "allowed_registries": ["registry.example.test:5000"],
            "default_run_as_user": 1000,
        },
        "hosting_registry_server": "registry.example.test:5000",
        "webhosting_hostings": [
            {
                "name": NAME,
                "uid": UID,
                "gid": UID,
                "domains": [f"{NAME}.example.test"],
                "ingress": {"certificate_source": "selfsigned"},
                # Only for this comparison: a published host port next to the socket.
                "policy": {"exposed_ports": [f"{HOST_PORT}/tcp"]},
                "registry": {"user": "labuser", "password": password},
                "pod": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": NAME},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.example.test:5000/lab/httpd:1",
                                "ports": [
                                    {
                                        "containerPort": PORT,
                                        "hostPort": HOST_PORT,
                                        "hostIP": "127.0.0.1",
                                    }
                                ],
                            }
                        ]
                    },
                },
            }
        ],
    }
    (tmp / "group_vars").mkdir()
    (tmp / "hosts.yml").write_text(json.dumps(hosts, indent=1))
    (tmp / "group_vars" / "pod_hosts.yml").write_text(json.dumps(group_vars, indent=1))
    return tmp / "hosts.yml"


def converge(host):
    env = dict(os.environ)
    env["PATH"] = f"{PROJECT}/lab/bin:{PROJECT}/.venv/bin:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(PROJECT / "ansible.cfg")
    player = shutil.which("ansible-playbook", path=env["PATH"])
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        inv = inventory(Path(tmp), host)
        print(f"converging hosting {NAME} on {host} (site.yml)...", flush=True)
        proc = subprocess.run(
            [player, "-i", str(inv), str(PROJECT / "site.yml")],
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
    if proc.returncode != 0:
        sys.exit(f"site.yml failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")


def pod_pid(host):
    """A PID (in the lab host) of a process in the bench pod: its network namespace."""
    out = lab_exec(
        host,
        f"awk -F: '$1==\"{NAME}\" {{print $2, $2+$3}}' /etc/subuid | {{ read lo hi;"
        " ps -eo pid=,uid=,comm= | awk -v lo=$lo -v hi=$hi"
        " '$2>=lo && $2<hi && $3 ~ /busybox|httpd/ {print $1; exit}'; }",
    ).stdout.strip()
    if not out.isdigit():
        sys.exit(f"no process of the {NAME} pod found on {host}")
    return out


def nginx_servers(host):
    """Plain-HTTP servers with the hosting's own `location /`, two upstreams."""
    vhost = lab_exec(host, f"cat /etc/nginx/webhosting-pods.d/{NAME}.conf").stdout
    tls = "\n".join(
        line
        for line in vhost.splitlines()
        if re.match(r"\s*ssl_(certificate|certificate_key) ", line)
    )
    # the HTTPS server's `location /` (the last one; port 80's only redirects)
    found = [loc for loc in re.findall(r"\n(    location / \{\n.*?\n    \})\n", vhost, re.S)]
    if not found or "proxy_pass http://unix:" not in found[-1]:
        sys.exit(f"no proxying `location /` in the server of {NAME}")
    socket_loc = found[-1]
    port_loc = re.sub(
        r"proxy_pass http://unix:[^;]+;", f"proxy_pass http://127.0.0.1:{HOST_PORT};", socket_loc
    )
    assert port_loc != socket_loc
    return (
        "# webhosting.pods benchmarks/bench_ingress.py: removed when the run ends\n"
        f"server {{\n    listen 127.0.0.1:{LISTEN['socket']};\n{socket_loc}\n}}\n"
        f"server {{\n    listen 127.0.0.1:{LISTEN['port']};\n{port_loc}\n}}\n"
        f"server {{\n    listen 127.0.0.1:{LISTEN['socket+tls']} ssl;\n{tls}\n{socket_loc}\n}}\n"
    )


def wrk(netns, url, args, script):
    argv = [NSENTER, f"--net={netns}", "wrk", "-t", str(args.threads), "-c", str(args.connections)]
    argv += ["-d", f"{args.duration}s", "--timeout", "5s", "-s", script, url]
    out = run(argv, check=False)
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not m:
        sys.exit(f"wrk failed for {url}: {out.stdout}{out.stderr}")
    reqs, dur, p50, p99, non2xx, *errors = map(int, m.group(1).split())
    return {
        "rps": reqs / (dur / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non2xx": non2xx,
        # wrk's socket errors: connect, read, write, timeout (no answer within --timeout)
        "errors": sum(errors),
        "timeouts": errors[3],
    }


def cpu_sample():
    fields = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]))
    return sum(fields), fields[7] if len(fields) > 7 else 0


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("host", help="lab host (up), e.g. i6-bookworm")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--no-converge", action="store_true", help="the bench hosting is already converged"
    )
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: lab/labctl deps installs it")
    spid = run([str(LABCTL), "pid", args.host]).stdout.strip()
    if not args.no_converge:
        converge(args.host)
    labpid = pod_pid(args.host)
    host_ns = f"/proc/{spid}/ns/net"
    pod_ns = f"/proc/{spid}/root/proc/{labpid}/ns/net"
    listening = lab_exec(args.host, "ss -ltnH").stdout
    if f"127.0.0.1:{HOST_PORT} " not in listening:
        sys.exit(f"nothing listens on 127.0.0.1:{HOST_PORT}: is the {NAME} pod running?")
    conf = nginx_servers(args.host)
    lab_exec(
        args.host,
        f"cat > {BENCH_CONF} <<'EOF'\n{conf}EOF\n"
        f"nginx -t -q || {{ rm -f {BENCH_CONF}; exit 1; }}; systemctl reload nginx",
    )
    paths = {
        "socket": (host_ns, f"http://127.0.0.1:{LISTEN['socket']}/"),
        "port": (host_ns, f"http://127.0.0.1:{LISTEN['port']}/"),
        "direct": (pod_ns, f"http://127.0.0.1:{PORT}/"),
        "socket+tls": (host_ns, f"https://127.0.0.1:{LISTEN['socket+tls']}/"),
    }
    results = {p: [] for p in paths}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    total0, steal0 = cpu_sample()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_SCRIPT)
        time.sleep(1)  # nginx workers after the reload
        for netns, url in paths.values():  # warm-up, not counted
            wrk(netns, url, argparse.Namespace(**{**vars(args), "duration": 2}), f.name)
        for r in range(args.rounds):
            for path, (netns, url) in paths.items():
                res = wrk(netns, url, args, f.name)
                results[path].append(res)
                print(
                    f"round {r + 1} {path:10} {res['rps']:9.0f} req/s"
                    f"  p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:6.2f} ms"
                    f"  non-2xx {res['non2xx']}  socket errors {res['errors']}"
                    f" (timeouts {res['timeouts']})",
                    flush=True,
                )
    finally:
        os.unlink(f.name)
        lab_exec(
            args.host, f"rm -f {BENCH_CONF}; nginx -t -q && systemctl reload nginx", check=False
        )
    total1, steal1 = cpu_sample()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    med = {
        p: {
            "rps": statistics.median(x["rps"] for x in rs),
            "p99_ms": statistics.median(x["p99_ms"] for x in rs),
            "non2xx": sum(x["non2xx"] for x in rs),
            "errors": sum(x["errors"] for x in rs),
        }
        for p, rs in results.items()
    }
    versions = lab_exec(args.host, "nginx -v 2>&1; podman --version").stdout.split("\n")
    print()
    print(f"lab host {args.host}: {'; '.join(v for v in versions if v)}")
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds;"
        f" machine: {os.cpu_count()} CPUs, load {' '.join(load_before)} -> {' '.join(load_after)},"
        f" CPU steal {100 * (steal1 - steal0) / max(1, total1 - total0):.1f} %"
    )
    print(
        f"{'path':12} {'median req/s':>12} {'median p99':>11} {'non-2xx':>8} {'socket errors':>14}"
    )
    for p, m in med.items():
        print(f"{p:12} {m['rps']:12.0f} {m['p99_ms']:8.2f} ms {m['non2xx']:8} {m['errors']:14}")
    vs_port = med["socket"]["rps"] / med["port"]["rps"]
    vs_direct = med["socket"]["rps"] / med["direct"]["rps"]
    non2xx = sum(m["non2xx"] for m in med.values())
    ok = vs_port >= 1.5 and vs_direct >= 0.9 and non2xx == 0
    print(
        f"socket / port = {vs_port:.2f} (target >= 1.5);"
        f" socket / direct = {vs_direct:.2f} (target >= 0.9);"
    )
    print(f"non-2xx answers: {non2xx} (target 0) -> {'targets met' if ok else 'TARGET MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": results, "median": med}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
