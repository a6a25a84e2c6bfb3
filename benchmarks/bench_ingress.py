#!/usr/bin/env python3
"""The HTTP path into a pod, every way, in one run (docs/benchmarks.md).

    benchmarks/bench_ingress.py LAB_HOST [--rounds 3] [--duration 10] [--connections 64]

On a lab host that is up (`lab/labctl up LAB_HOST`), push the lab's application images
(`labctl app-images`) and converge one extra hosting `bench` with `site.yml`. Its pod has
two apps, and publishes host ports next to its unix sockets (only this benchmark's policy
allows that):

- `web`: the lab image's busybox httpd on 8080 (a fork per request, no keep-alive);
- `app`: nginx from lab/multi:1 on 8081 (event-driven, keep-alive), which also listens on
  a unix socket in the hosting's data/ itself (data/app.sock), with PHP-FPM behind it for
  /page.php (a small dynamic page, about 0.5 ms of CPU).

Then a small page (115 bytes) is measured with wrk, every path in every round:

- web:socket      nginx -> unix socket tmp/run/8080 -> the role's forwarder -> httpd
                  (the product's path, its `location /` copied from the hosting's server)
- web:port        nginx -> 127.0.0.1:18080 (the published port) -> httpd
- web:direct      wrk inside the pod's network namespace -> httpd
- web:socket+tls  like web:socket, through HTTPS (what visitors use)
- app:socket      the product's path to the keep-alive app (8081): one upstream
                  connection per request ("Connection: close")
- app:socket+ka   the same socket with an nginx `upstream { keepalive }`
- app:app-socket  nginx -> the unix socket the app listens on itself (keep-alive; no
                  forwarder, no TCP)
- app:direct      wrk inside the pod's network namespace -> the app
- php:...         the four app paths again for the PHP page

For each path the CPU time of each part is measured over the run (host nginx, forwarder,
the app's processes, the port helper, wrk) and printed as microseconds per request, with
the rest of the machine's busy time (mostly the kernel's loopback and unix-socket work).

The nginx servers are plain HTTP on 127.0.0.1 (one HTTPS) and are removed at the end, as
is the ACL that lets nginx reach data/app.sock; the hosting stays (`state: absent` removes
it). Exit status 1 when a target of the product's path is missed: web:socket >= 1.5 x
web:port and >= 0.9 x web:direct requests/s, and no non-2xx answer anywhere.
"""

import argparse
import json
import os
import re
import resource
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
WEB_PORT, APP_PORT = 8080, 8081
HOST_PORT = {WEB_PORT: 18080, APP_PORT: 18081}
BENCH_CONF = "/etc/nginx/conf.d/webhosting-pods-bench.conf"
LISTEN = {
    "web:socket": 18001,
    "web:port": 18002,
    "web:socket+tls": 18003,
    "app:socket": 18004,
    "app:socket+ka": 18005,
    "app:app-socket": 18006,
}
APP_SOCKET = "app.sock"  # in the hosting's data/, created by the app (its /data)
HOSTING_ROOT = f"/srv/hostings/{NAME}"  # hosting_base_dir's default
KEEPALIVE = 32  # idle upstream connections per nginx worker

# The keep-alive app: nginx from lab/multi:1 as the container's uid 1000, a read-only
# root, its files in /tmp (in memory): a static 115-byte page like busybox's index.html,
# and /page.php, a small PHP page (PHP-FPM, two workers) that hashes 256 KiB per request.
# umask 0: the socket it creates is 0777 (nginx on the host still needs the ACL below).
APP_SCRIPT = r"""set -eu
mkdir -p /tmp/www
head -c 114 /dev/zero | tr '\0' x > /tmp/www/index.html
echo >> /tmp/www/index.html
cat > /tmp/www/page.php <<'END'
<?php
$h = hash('sha256', str_repeat('webhosting.pods ', 16384));
echo str_pad($h, 114, '.'), "\n";
END
cat > /tmp/php-fpm.conf <<'END'
[global]
pid = /tmp/php-fpm.pid
error_log = /proc/self/fd/2
daemonize = yes
[bench]
listen = /tmp/php-fpm.sock
pm = static
pm.max_children = 2
END
cat > /tmp/nginx.conf <<'END'
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path /tmp/body;
    fastcgi_temp_path /tmp/fastcgi;
    proxy_temp_path /tmp/proxy;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {
        listen 8081;
        listen unix:/data/app.sock;
        root /tmp/www;
        location = /page.php {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /tmp/www/page.php;
            fastcgi_pass unix:/tmp/php-fpm.sock;
        }
    }
}
END
/usr/sbin/php-fpm8.2 --fpm-config /tmp/php-fpm.conf
rm -f /data/app.sock
umask 0
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
"""

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


def pod():
    def port(p):
        return {"containerPort": p, "hostPort": HOST_PORT[p], "hostIP": "127.0.0.1"}

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": NAME},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.test:5000/lab/httpd:1",
                    "ports": [port(WEB_PORT)],
                },
                {
                    "name": "app",
                    "image": "registry.example.test:5000/lab/multi:1",
                    "command": ["/bin/sh", "-c", APP_SCRIPT],
                    "ports": [port(APP_PORT)],
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                },
            ],
            "volumes": [
                {"name": "data", "hostPath": {"path": "/data", "type": "Directory"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            ],
        },
    }


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
            "volumes_containers_gid_share": True,
        },
        "hosting_registry_server": "registry.example.test:5000",
        "webhosting_hostings": [
            {
                "name": NAME,
                "uid": UID,
                "gid": UID,
                "domains": [f"{NAME}.example.test"],
                "socket_ports": [WEB_PORT, APP_PORT],  # nginx proxies to the first
                "ingress": {"certificate_source": "selfsigned"},
                # Only for this comparison: published host ports next to the sockets.
                "policy": {"exposed_ports": [f"{p}/tcp" for p in HOST_PORT.values()]},
                "registry": {"user": "labuser", "password": password},
                "pod": pod(),
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
    print(f"pushing the application images to {host} (labctl app-images)...", flush=True)
    run([str(LABCTL), "app-images", host])
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
    tenant_pod_file(host)


def tenant_pod_file(host):
    """The inventory's pod only seeds the tenant's pod file: like a tenant, write this
    script's pod there (as the hosting user) and restart with the trigger file."""
    path = f"{HOSTING_ROOT}/private/container-config/pod-{NAME}.yaml"
    want = json.dumps(pod(), indent=1) + "\n"
    if lab_exec(host, f"cat {path}").stdout == want:
        return
    log = f"{HOSTING_ROOT}/logs/pod_restart.log"
    before = lab_exec(host, f"cat {log} 2>/dev/null || true").stdout
    as_user = f"setpriv --reuid={UID} --regid={UID} --init-groups"
    trigger = f"{HOSTING_ROOT}/scripts/pod_restart/pod_restart.run"
    script = f"cd / && {as_user} sh -c 'cat > {path} && touch {trigger}' <<'EOF'\n{want}EOF\n"
    lab_exec(host, script)
    print(f"restarting the {NAME} pod with its new pod file (trigger)...", flush=True)
    for _ in range(300):
        new = lab_exec(host, f"cat {log} 2>/dev/null || true").stdout[len(before) :]
        if "pod restarted" in new:
            return
        if "NOT restarted" in new or "did not start again" in new:
            sys.exit(f"the {NAME} pod did not restart:\n{new}")
        time.sleep(1)
    sys.exit(f"the {NAME} pod did not restart within 300 s")


class LabProcs:
    """The lab host's processes, read through its own /proc (PIDs of its namespace)."""

    def __init__(self, spid, host):
        self.proc = Path(f"/proc/{spid}/root/proc")
        line = lab_exec(host, f"awk -F: '$1==\"{NAME}\" {{print $2, $3}}' /etc/subuid").stdout
        lo, count = map(int, line.split())
        self.subuids = range(lo, lo + count)
        self.tick = os.sysconf("SC_CLK_TCK")

    def each(self):
        """(pid, comm, uid, CPU seconds incl. reaped children) of every process."""
        for d in self.proc.iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                uid = int((d / "status").read_text().split("\nUid:", 1)[1].split()[0])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            f = stat[stat.rindex(")") + 2 :].split()
            # utime stime cutime cstime: fields 14-17 of stat, 11-14 after pid, comm
            cpu = sum(int(x) for x in f[11:15]) / self.tick
            yield int(d.name), comm, uid, cpu

    def pod_pid(self, comms):
        """A process of the pod (its network namespace is the pod's)."""
        for pid, comm, uid, _ in self.each():
            if uid in self.subuids and comm.startswith(comms):
                return pid
        sys.exit(f"no {' or '.join(comms)} process of the {NAME} pod found")

    def cpu(self):
        """CPU seconds per part of the path (cumulative since each process started)."""
        parts = {"nginx": 0.0, "forwarder": 0.0, "app": 0.0, "port helper": 0.0}
        for _, comm, uid, cpu in self.each():
            if uid in self.subuids:
                parts["app"] += cpu
            elif comm == "nginx":
                parts["nginx"] += cpu
            elif comm.startswith("systemd-socket"):
                parts["forwarder"] += cpu
            elif comm.startswith(("rootlessport", "slirp4netns", "pasta")):
                parts["port helper"] += cpu
        return parts


def nginx_servers(host, app_socket):
    """Plain-HTTP servers with the hosting's own `location /`, one per nginx path."""
    vhost = lab_exec(host, f"cat /etc/nginx/webhosting-pods.d/{NAME}.conf").stdout
    tls = "\n".join(
        line
        for line in vhost.splitlines()
        if re.match(r"\s*ssl_(certificate|certificate_key) ", line)
    )
    # the HTTPS server's `location /` (the last one; port 80's only redirects)
    found = [loc for loc in re.findall(r"\n(    location / \{\n.*?\n    \})\n", vhost, re.S)]
    m = re.search(r"proxy_pass http://unix:([^;]+)/(\d+):;", found[-1] if found else "")
    if not m or m.group(2) != str(WEB_PORT):
        sys.exit(f"no `location /` proxying to socket port {WEB_PORT} in the server of {NAME}")
    web_loc, sockdir = found[-1], m.group(1)

    def upstream(url, keepalive=False):
        loc = web_loc.replace(m.group(0), f"proxy_pass {url};")
        if keepalive:  # what nginx needs to keep upstream connections open
            loc = re.sub(
                r"proxy_set_header Connection [^;]+;", 'proxy_set_header Connection "";', loc
            )
        assert loc != web_loc
        return loc

    def server(path, loc, ssl=""):
        return (
            f"server {{\n    listen 127.0.0.1:{LISTEN[path]}{ssl};\n"
            f"{tls if ssl else ''}\n{loc}\n}}\n"
        )

    return (
        "# webhosting.pods benchmarks/bench_ingress.py: removed when the run ends\n"
        f"upstream bench_socket_ka {{\n    server unix:{sockdir}/{APP_PORT};\n"
        f"    keepalive {KEEPALIVE};\n}}\n"
        f"upstream bench_app_socket {{\n    server unix:{app_socket};\n"
        f"    keepalive {KEEPALIVE};\n}}\n"
        + server("web:socket", web_loc)
        + server("web:port", upstream(f"http://127.0.0.1:{HOST_PORT[WEB_PORT]}"))
        + server("web:socket+tls", web_loc, " ssl")
        + server("app:socket", upstream(f"http://unix:{sockdir}/{APP_PORT}:"))
        + server("app:socket+ka", upstream("http://bench_socket_ka", keepalive=True))
        + server("app:app-socket", upstream("http://bench_app_socket", keepalive=True))
    )


def grant_app_socket(host):
    """Let nginx (www-data) reach data/app.sock: (socket path, script that undoes it)."""
    home = HOSTING_ROOT
    sock = f"{home}/data/{APP_SOCKET}"
    for _ in range(30):
        if lab_exec(host, f"test -S {sock}", check=False).returncode == 0:
            break
        time.sleep(1)
    else:
        sys.exit(f"the app did not create {sock}")
    undo, grant = [], []
    for d in (home, f"{home}/data"):
        if "user:www-data:" not in lab_exec(host, f"getfacl -cp {d}").stdout:
            grant.append(f"setfacl -m u:www-data:x {d}")
            undo.append(f"setfacl -x u:www-data {d}")
    grant.append(f"setfacl -m u:www-data:rw {sock}")
    lab_exec(host, " && ".join(grant))
    return sock, "; ".join(undo)


def wrk(netns, url, args, script):
    argv = [NSENTER, f"--net={netns}", "wrk", "-t", str(args.threads), "-c", str(args.connections)]
    argv += ["-d", f"{args.duration}s", "--timeout", "5s", "-s", script, url]
    out = run(argv, check=False)
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not m:
        sys.exit(f"wrk failed for {url}: {out.stdout}{out.stderr}")
    reqs, dur, p50, p99, non2xx, *errors = map(int, m.group(1).split())
    return {
        "requests": reqs,
        "rps": reqs / (dur / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non2xx": non2xx,
        # wrk's socket errors: connect, read, write, timeout (no answer within --timeout)
        "errors": sum(errors),
        "timeouts": errors[3],
    }


def cpu_sample():
    """(all, busy, steal) jiffies of the whole machine so far."""
    fields = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]))
    idle, steal = fields[3] + fields[4], fields[7] if len(fields) > 7 else 0
    return sum(fields), sum(fields) - idle - steal, steal


def measured_run(procs, netns, url, args, script):
    """One wrk run, with the CPU time each part spent on it (microseconds per request)."""
    cpu0 = procs.cpu()
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    _, busy0, _ = cpu_sample()
    res = wrk(netns, url, args, script)
    _, busy1, _ = cpu_sample()
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = procs.cpu()
    n = max(1, res["requests"])
    us = {part: 1e6 * (cpu1[part] - cpu0[part]) / n for part in cpu0}
    us["wrk"] = 1e6 * (wrk1.ru_utime + wrk1.ru_stime - wrk0.ru_utime - wrk0.ru_stime) / n
    busy = 1e6 * (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / n
    # the rest: the kernel's softirq work (loopback TCP), other lab hosts, this script
    us["rest"] = busy - sum(us.values())
    us["machine"] = busy
    res["cpu_us"] = us
    return res


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
    procs = LabProcs(spid, args.host)
    host_ns = f"/proc/{spid}/ns/net"
    pod_ns = f"/proc/{spid}/root/proc/{procs.pod_pid(('busybox', 'httpd'))}/ns/net"
    listening = lab_exec(args.host, "ss -ltnH").stdout
    for p in HOST_PORT.values():
        if f"127.0.0.1:{p} " not in listening:
            sys.exit(f"nothing listens on 127.0.0.1:{p}: is the {NAME} pod running?")
    app_socket, undo_acl = grant_app_socket(args.host)
    conf = nginx_servers(args.host, app_socket)
    lab_exec(
        args.host,
        f"cat > {BENCH_CONF} <<'EOF'\n{conf}EOF\n"
        f"nginx -t -q || {{ rm -f {BENCH_CONF}; exit 1; }}; systemctl reload nginx",
    )
    local = "http://127.0.0.1"
    paths = {
        "web:socket": (host_ns, f"{local}:{LISTEN['web:socket']}/"),
        "web:port": (host_ns, f"{local}:{LISTEN['web:port']}/"),
        "web:direct": (pod_ns, f"{local}:{WEB_PORT}/"),
        "web:socket+tls": (host_ns, f"https://127.0.0.1:{LISTEN['web:socket+tls']}/"),
        "app:socket": (host_ns, f"{local}:{LISTEN['app:socket']}/"),
        "app:socket+ka": (host_ns, f"{local}:{LISTEN['app:socket+ka']}/"),
        "app:app-socket": (host_ns, f"{local}:{LISTEN['app:app-socket']}/"),
        "app:direct": (pod_ns, f"{local}:{APP_PORT}/"),
    }
    for path in [p for p in paths if p.startswith("app:")]:  # the same, the PHP page
        netns, url = paths[path]
        paths["php:" + path[4:]] = (netns, url + "page.php")
    results = {p: [] for p in paths}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    total0, _, steal0 = cpu_sample()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_SCRIPT)
        time.sleep(1)  # nginx workers after the reload
        for netns, url in paths.values():  # warm-up, not counted
            wrk(netns, url, argparse.Namespace(**{**vars(args), "duration": 2}), f.name)
        for r in range(args.rounds):
            for path, (netns, url) in paths.items():
                res = measured_run(procs, netns, url, args, f.name)
                results[path].append(res)
                print(
                    f"round {r + 1} {path:15} {res['rps']:9.0f} req/s"
                    f"  p50 {res['p50_ms']:6.2f} ms  p99 {res['p99_ms']:7.2f} ms"
                    f"  non-2xx {res['non2xx']}  socket errors {res['errors']}"
                    f" (timeouts {res['timeouts']})",
                    flush=True,
                )
    finally:
        os.unlink(f.name)
        lab_exec(
            args.host,
            f"rm -f {BENCH_CONF}; nginx -t -q && systemctl reload nginx; {undo_acl or ':'}",
            check=False,
        )
    total1, _, steal1 = cpu_sample()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    med = {
        p: {
            "rps": statistics.median(x["rps"] for x in rs),
            "p99_ms": statistics.median(x["p99_ms"] for x in rs),
            "non2xx": sum(x["non2xx"] for x in rs),
            "errors": sum(x["errors"] for x in rs),
            "cpu_us": {k: statistics.median(x["cpu_us"][k] for x in rs) for k in rs[0]["cpu_us"]},
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
    parts = list(next(iter(med.values()))["cpu_us"])
    print(
        f"{'path':15} {'req/s':>7} {'p99':>10} {'non-2xx':>7} {'errors':>6}  "
        + "  ".join(f"{k:>11}" for k in parts)
        + "   (CPU µs per request, medians)"
    )
    for p, m in med.items():
        print(
            f"{p:15} {m['rps']:7.0f} {m['p99_ms']:7.1f} ms {m['non2xx']:7} {m['errors']:6}  "
            + "  ".join(f"{m['cpu_us'][k]:11.1f}" for k in parts)
        )
    ratio = {
        f"{a} / {b}": med[a]["rps"] / med[b]["rps"]
        for a, b in [
            ("web:socket", "web:port"),
            ("web:socket", "web:direct"),
            ("app:socket", "app:direct"),
            ("app:socket+ka", "app:direct"),
            ("app:app-socket", "app:direct"),
            ("php:socket", "php:direct"),
            ("php:socket+ka", "php:direct"),
            ("php:app-socket", "php:direct"),
        ]
    }
    for k, v in ratio.items():
        print(f"{k:32} {v:.2f}")
    non2xx = sum(m["non2xx"] for m in med.values())
    ok = ratio["web:socket / web:port"] >= 1.5 and ratio["web:socket / web:direct"] >= 0.9
    ok = ok and non2xx == 0
    print(
        "targets (web:socket >= 1.5 x web:port and >= 0.9 x web:direct, no non-2xx):"
        f" {'met' if ok else 'MISSED'} (non-2xx answers: {non2xx})"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rounds": results, "median": med, "ratios": ratio}, indent=1)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
