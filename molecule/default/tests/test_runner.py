"""One runner: the policy keys that decide how podman runs a pod apply on the host, checked
in what the containers really get (their network interfaces), not in the rendered YAML.

alpha's policy says `network: none`; beta runs with the host's default helper, or with
`pasta` where the release has it (Debian 13). Both serve over HTTPS through nginx.
"""

from pathlib import Path

import yaml

GROUP_VARS = Path(__file__).parents[1] / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = {h["name"]: h for h in yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]}


def _release(lab):
    return lab.system_info.release.split(".")[0]


def _container_pid(lab, name, container_pids):
    pids = container_pids(lab, name)
    assert pids, f"no container process of {name}"
    return pids[0][0]


def _interfaces(lab, pid):
    """Interface names in the network namespace of a container process."""
    out = lab.check_output(f"nsenter -t {pid} -n ip -o link show")
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def test_network_none_leaves_only_loopback(lab, container_pids):
    assert HOSTINGS["alpha"]["policy"]["network"] == "none"
    pid = _container_pid(lab, "alpha", container_pids)
    assert _interfaces(lab, pid) == ["lo"]
    routes = lab.check_output(f"nsenter -t {pid} -n ip route show")
    assert routes.strip() == ""
    # an outgoing connection has nowhere to go, not even slirp4netns's gateway to the host
    out = lab.run(f"nsenter -t {pid} -n curl -sS --max-time 5 http://10.0.2.2:1/")
    assert out.rc == 7, (out.rc, out.stderr)  # curl: could not connect


def test_network_none_pod_still_serves_through_nginx(lab):
    out = lab.run("curl -sS --max-time 10 https://alpha.example.test/version")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() in ("1", "2")


def test_default_network_pod_has_an_outgoing_interface(lab, container_pids):
    pid = _container_pid(lab, "beta", container_pids)
    interfaces = _interfaces(lab, pid)
    assert "lo" in interfaces and len(interfaces) == 2, interfaces
    assert "default" in lab.check_output(f"nsenter -t {pid} -n ip route show")


def _network_helpers(lab, user):
    out = lab.check_output("ps -eo user:32=,comm=")
    return sorted(
        comm
        for owner, comm in (line.split(None, 1) for line in out.splitlines())
        if owner == user and comm.strip() in ("slirp4netns", "pasta", "pasta.avx2")
    )


def test_each_pod_gets_the_network_helper_its_policy_says(lab):
    """The pod unit applies the policy (userpod play): alpha (none) runs no network
    helper, beta runs pasta on Debian 13 and the host's default, slirp4netns, on 12."""
    assert _network_helpers(lab, "alpha") == []
    helpers = _network_helpers(lab, "beta")
    if _release(lab) == "13":
        assert helpers and all(h.startswith("pasta") for h in helpers), helpers
    else:
        assert helpers == ["slirp4netns"], helpers


def test_beta_serves_through_nginx_with_its_network(lab):
    out = lab.run("curl -sS --max-time 10 https://beta.example.test/version")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() in ("1", "2")


def _mount_of(lab, pid, mount_point):
    """(fs type, super options) of mount_point in a process's /proc/PID/mountinfo; None
    also when the process has ended since it was listed (the db's `sleep` children)."""
    for line in lab.run(f"cat /proc/{pid}/mountinfo").stdout.splitlines():
        fields = line.split()
        if fields[4] == mount_point:
            after = fields[fields.index("-") + 1 :]
            return after[0], after[2]
    return None


def _podman_as(name, command):
    return (
        f"setpriv --reuid={name} --regid={name} --init-groups env USER={name}"
        f" XDG_RUNTIME_DIR=/run/user/$(id -u {name})"
        f" XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{name}/config"
        f" HOME=/var/lib/webhosting-pods/users/{name} PODMAN_IGNORE_CGROUPSV1_WARNING=1"
        f" podman {command}"
    )


def test_in_memory_volume_is_one_sized_tmpfs_for_the_whole_pod(lab, container_pids):
    """beta's `cache` (emptyDir medium Memory, no sizeLimit: the default 64Mi) is a tmpfs of
    that size in what each container really mounts, and the same one in both containers
    (podman 4.3 alone would put it on disk; podman 5.4 would give each container its own)."""
    assert HOSTINGS["beta"]["pod"]["spec"]["volumes"][2]["emptyDir"] == {"medium": "Memory"}
    seen = {}
    for pid, _uid, _comm in container_pids(lab, "beta"):
        mount = _mount_of(lab, pid, "/cache")
        if mount:
            seen[pid] = mount
    assert len(seen) >= 2, seen  # web and db
    for fstype, options in seen.values():
        assert fstype == "tmpfs", seen
        assert "size=65536k" in options.split(","), seen
    mark = f"shared-{len(seen)}"
    res = lab.run(_podman_as("beta", f"exec beta-db /bin/sh -c 'echo {mark} > /cache/shared'"))
    assert res.rc == 0, res.stderr
    res = lab.run(_podman_as("beta", "exec beta-web cat /cache/shared"))
    assert res.rc == 0 and res.stdout.strip() == mark, (res.stdout, res.stderr)
