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
