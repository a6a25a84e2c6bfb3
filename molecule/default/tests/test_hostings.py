"""Hostings on the lab hosts, checked from the outside: /proc, the file system, HTTP."""

from pathlib import Path

import pytest
import yaml

GROUP_VARS = Path(__file__).parents[1] / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
NAMES = [h["name"] for h in HOSTINGS]


@pytest.mark.parametrize("name", NAMES)
def test_user_locked_nologin_and_home_not_writable(lab, name):
    user = lab.user(name)
    assert user.exists
    assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin")
    home = lab.file(user.home)
    assert home.user == "root" and not home.mode & 0o022
    assert not lab.file(f"/srv/hostings/{name}").is_symlink


@pytest.mark.parametrize("name", NAMES)
def test_linger_and_pod_unit_active(lab, name):
    assert lab.file(f"/var/lib/systemd/linger/{name}").exists
    state = lab.run(f"systemctl --user --machine={name}@ is-active webhosting-pod.service")
    assert state.stdout.strip() == "active", state.stdout + state.stderr


@pytest.mark.parametrize("name", NAMES)
def test_containers_run_under_own_subuids_never_root(lab, name, container_pids, subid_range):
    pids = container_pids(lab, name)
    assert pids, f"no container process of {name} in its subuid range"
    others = [n for n in NAMES if n != name]
    for other in others:
        lo, hi = subid_range(lab, other)
        assert not any(lo <= uid < hi for _, uid, _ in pids)


def test_subuid_ranges_do_not_overlap(lab):
    ranges = sorted(
        tuple(map(int, line.split(":")[1:]))
        for line in lab.file("/etc/subuid").content_string.splitlines()
        if line
    )
    for (a_start, a_count), (b_start, _) in zip(ranges, ranges[1:]):
        assert a_start + a_count <= b_start


@pytest.mark.parametrize("name", NAMES)
def test_pod_serves_http_in_its_network_namespace(lab, name, container_pids):
    # Enter the network namespace of one of the hosting's container processes and ask
    # the pod's web server on its socket port.
    hosting = next(h for h in HOSTINGS if h["name"] == name)
    port = hosting.get("socket_ports", [8080])[0]
    pids = container_pids(lab, name)
    pid = next(pid for pid, _, comm in pids if "httpd" in comm or "busybox" in comm)
    url = f"http://127.0.0.1:{port}/version"
    out = lab.run(f"nsenter -t {pid} -n curl -sS --max-time 5 {url}")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() in ("1", "2")


def test_tenants_cannot_read_each_other(lab):
    a, b = NAMES[0], NAMES[1]
    for path in (
        f"/srv/hostings/{b}",
        f"/srv/hostings/{b}/private/container-config/pod-{b}.yaml",
        f"/srv/hostings/{b}/data",
        f"/run/webhosting-pods/{b}",
    ):
        res = lab.run(f"runuser -u {a} -- ls {path}")
        # refused for its permissions: a path that does not exist would prove nothing
        assert lab.file(path).exists, path
        assert res.rc != 0 and "Permission denied" in res.stderr, (path, res.stderr)


def test_tenant_cannot_plant_user_units(lab):
    name = NAMES[0]
    home = lab.user(name).home
    assert lab.file(f"{home}/.config/systemd/user").is_directory
    res = lab.run(f"runuser -u {name} -- touch {home}/.config/systemd/user/evil.service")
    assert res.rc != 0 and "Permission denied" in res.stderr, res.stderr


def test_no_tcp_listener_for_pod_ports_on_the_host(lab):
    # Pods are reached through unix sockets only: nothing listens on their ports here.
    ports = {p for h in HOSTINGS for p in h.get("socket_ports", [8080])}
    out = lab.check_output("ss -Hltn")
    listening = {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()}
    assert not ports & listening, out
