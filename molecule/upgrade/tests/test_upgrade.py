"""Upgrade in place: lab hosts converged by the previous release (converge.yml) are
upgraded by the working tree's site.yml, checked from the outside.

The `upgrade` fixture does the upgrade once for every lab host of the scenario:
1. as the tenants would, edit each hosting's pod file and put files in www/ and data/;
   record their bytes and metadata, and the certificates (the pod file is compared under
   its new name, pod-NAME.yaml, after the upgrade);
2. `site.yml --check` of the working tree must report changes and change nothing
   (molecule/default/checkmode.py compares snapshots of the hosts);
3. start an HTTPS probe of every hosting in each lab host (a transient systemd service,
   a request every 0.1 s), converge the working tree, stop the probes;
4. converge again: nothing may change.
The tests then check the results; the longest interruption per hosting is written to
$UPGRADE_FIGURES (default /tmp/webhosting-pods-upgrade.json) for docs/benchmarks.md.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

# (conftest.py here is the default scenario's: its fixtures all_labs and run_site are used;
# `from conftest import` would find the unit tests' conftest first on pytest's path.)
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
INVENTORY = Path(__file__).parents[1] / "inventory" / "hosts.yml"
HOSTS = sorted(yaml.safe_load(INVENTORY.read_text())["all"]["children"]["pod_hosts"]["hosts"])
GROUP_VARS = PROJECT / "molecule" / "default" / "inventory" / "group_vars" / "pod_hosts.yml"
HOSTINGS = yaml.safe_load(GROUP_VARS.read_text())["webhosting_hostings"]
FIGURES = os.environ.get("UPGRADE_FIGURES", "/tmp/webhosting-pods-upgrade.json")
PROBE_STEP = 0.1
# What the running pods write while the dry run runs: left out of its before/after
# comparison (the tenant's own files are compared byte for byte by the tests below).
CONTAINER_WRITTEN = [
    "/srv/hostings/*/logs",
    "/srv/hostings/*/data",
    "/srv/hostings/*/tmp",
    "/var/lib/webhosting-pods/storage",
]

# Files a tenant writes, per hosting (relative to the hosting root), and what is put there.
TENANT_FILES = {
    "private/container-config/pod.yaml": None,  # the seeded file, edited: a line appended
    "www/upgrade-check.html": "<p>written by the tenant before the upgrade</p>\n",
    "data/upgrade-check.txt": "tenant data before the upgrade\n",
}


def q(text):
    return shlex.quote(str(text))


# The tenant's files this release names otherwise (the provider's documented names).
RENAMED = {"private/container-config/pod.yaml": "private/container-config/pod-{name}.yaml"}


def tenant_state(lab, name, upgraded=False):
    """sha256, owner, group and mode of each tenant file and of www/ and data/, each under
    its name before the upgrade (``upgraded``: read from its new name)."""
    root = f"/srv/hostings/{name}"
    rels = list(TENANT_FILES) + ["www", "data"]
    lines = []
    for rel in rels:
        actual = RENAMED.get(rel, rel).format(name=name) if upgraded else rel
        path = f"{root}/{actual}"
        out = lab.check_output(
            f"stat -c '%U %G %a' {q(path)}; [ -d {q(path)} ] || sha256sum < {q(path)}"
        )
        lines += [f"{rel} {line}" for line in out.splitlines()]
    return sorted(lines)


def certificates(lab):
    out = lab.run(
        "find /etc/letsencrypt/archive /etc/webhosting-pods/ingress/certs -type f 2>/dev/null"
        " | LC_ALL=C sort | xargs -r sha256sum"
    )
    return out.stdout.splitlines()


def place_tenant_files(lab, name):
    root = f"/srv/hostings/{name}"
    for rel, content in TENANT_FILES.items():
        path = f"{root}/{rel}"
        if content is None:
            script = f"printf '# edited by the tenant before the upgrade\\n' >> {q(path)}"
        else:
            script = f"printf %s {q(content)} > {q(path)}"
        # as the hosting user, as over SFTP
        lab.check_output(f"runuser -u {name} -- /bin/sh -c {q(script)}")


PROBE = (
    "while [ ! -e /run/upgrade-probe.stop ]; do"
    " for d in {domains}; do"
    ' c=$(curl -s -o /dev/null -m 2 -w "%{{http_code}}" "https://$d/version");'
    ' echo "$(date +%s.%N) $d $c";'
    " done; sleep {step}; done >> /run/upgrade-probe.log"
)


def start_probe(lab):
    domains = " ".join(h["domains"][0] for h in HOSTINGS)
    lab.check_output("rm -f /run/upgrade-probe.stop /run/upgrade-probe.log")
    lab.check_output(
        "systemd-run --quiet --unit=upgrade-probe --collect /bin/sh -c "
        + q(PROBE.format(domains=domains, step=PROBE_STEP))
    )


def stop_probe(lab):
    lab.check_output("touch /run/upgrade-probe.stop")
    time.sleep(3)
    lab.run("systemctl stop upgrade-probe.service")
    return lab.check_output("cat /run/upgrade-probe.log").splitlines()


def interruptions(lines):
    """Per domain: (longest time without a 200 answer in s, requests, failed requests)."""
    per = {}
    for line in lines:
        try:
            stamp, domain, code = line.split()
            per.setdefault(domain, []).append((float(stamp), code))
        except ValueError:
            continue
    result = {}
    for domain, records in per.items():
        longest, last_ok, failed = 0.0, None, 0
        down_since = None
        for stamp, code in records:
            if code == "200":
                if down_since is not None:
                    longest = max(longest, stamp - (last_ok or down_since))
                    down_since = None
                last_ok = stamp
            else:
                failed += 1
                if down_since is None:
                    down_since = stamp
        if down_since is not None:  # still down at the end
            longest = max(longest, records[-1][0] - (last_ok or down_since))
        result[domain] = {
            "longest_s": round(longest, 2),
            "requests": len(records),
            "failed": failed,
        }
    return result


@pytest.fixture(scope="module")
def upgrade(all_labs, run_site):
    labs = {h: all_labs[h] for h in HOSTS}
    hosts = list(labs)
    names = [h["name"] for h in HOSTINGS if h.get("state", "present") == "present"]
    before = {}
    for host, lab in labs.items():
        for name in names:
            place_tenant_files(lab, name)
        before[host] = {
            "tenant": {name: tenant_state(lab, name) for name in names},
            "certificates": certificates(lab),
        }
    volatile = [arg for path in CONTAINER_WRITTEN for arg in ("--volatile", path)]
    check = subprocess.run(
        [sys.executable, str(PROJECT / "molecule" / "default" / "checkmode.py"), *volatile]
        + [str(INVENTORY), *hosts],
        capture_output=True,
        text=True,
        check=False,
    )
    for lab in labs.values():
        start_probe(lab)
    started = time.monotonic()
    first = run_site(hosts)
    upgrade_s = time.monotonic() - started
    probes = {host: stop_probe(lab) for host, lab in labs.items()}
    second = run_site(hosts)
    figures = {
        host: {"upgrade_run_s": round(upgrade_s, 1), "domains": interruptions(lines)}
        for host, lines in probes.items()
    }
    with open(FIGURES, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)
    print(json.dumps(figures, indent=2, sort_keys=True))
    return {
        "labs": labs,
        "names": names,
        "before": before,
        "check": check,
        "first": first,
        "second": second,
        "figures": figures,
    }


def test_check_mode_predicts_the_upgrade_and_changes_nothing(upgrade):
    check = upgrade["check"]
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


def test_the_upgrade_run_succeeds(upgrade):
    rc, stats, out = upgrade["first"]
    assert rc == 0, out[-5000:]
    assert sorted(stats) == HOSTS, stats
    for host, st in stats.items():
        assert st.get("failures", 0) == 0 and st.get("unreachable", 0) == 0, (host, st)
        assert st.get("changed", 0) > 0, (host, st)  # an upgrade that changed nothing did not run


def test_a_second_run_changes_nothing(upgrade):
    rc, stats, out = upgrade["second"]
    assert rc == 0, out[-5000:]
    assert stats and all(s.get("changed", -1) == 0 for s in stats.values()), stats


@pytest.mark.parametrize("host", HOSTS)
def test_tenant_files_and_certificates_are_untouched(upgrade, host):
    lab = upgrade["labs"][host]
    for name in upgrade["names"]:
        after = tenant_state(lab, name, upgraded=True)
        assert after == upgrade["before"][host]["tenant"][name], name
    assert certificates(lab) == upgrade["before"][host]["certificates"]


@pytest.mark.parametrize("host", HOSTS)
def test_every_hosting_kept_serving(upgrade, host):
    domains = upgrade["figures"][host]["domains"]
    # every hosting's domain was probed: an empty probe log would check nothing
    assert set(domains) == {h["domains"][0] for h in HOSTINGS}, domains
    for domain, figures in domains.items():
        assert figures["requests"] > 20, (domain, figures)
        # a forwarder or pod restart costs a moment; never a hosting down for long
        assert figures["longest_s"] < 30, (domain, figures)
    lab = upgrade["labs"][host]
    for hosting in HOSTINGS:
        out = lab.run(f"curl -sS --max-time 10 https://{hosting['domains'][0]}/version")
        assert out.rc == 0 and out.stdout.strip() in ("1", "2"), (hosting["name"], out.stderr)


@pytest.mark.parametrize("host", HOSTS)
def test_nothing_of_the_old_layout_is_left(upgrade, host):
    lab = upgrade["labs"][host]
    # files of 0.1.0 that 0.2.0 replaced
    assert not lab.file("/usr/local/lib/webhosting-pods/socket-forward").exists
    assert not lab.file("/usr/local/lib/webhosting-pods/pod_policy.py").exists
    assert lab.file("/usr/local/lib/webhosting-pods/pod_policy/__init__.py").exists
    for name in upgrade["names"]:
        # the tenant files under the provider's documented names; root's env files and
        # registry login moved out of the tenant's tree
        config = f"/srv/hostings/{name}/private/container-config"
        listing = lab.check_output(f"ls -A {config}").split()
        assert "pod.yaml" not in listing and "system.yaml" not in listing, listing
        assert {f"pod-{name}.yaml", f"system-{name}.yaml"} <= set(listing), listing
        owners = lab.check_output(f"find {config} -name '*.env' -user root")
        assert owners.strip() == "", owners
        unit_dir = f"/var/lib/webhosting-pods/users/{name}/.config/systemd/user"
        unit = lab.file(f"{unit_dir}/webhosting-pod.service").content_string
        assert "userpod play" in unit  # the one runner, not the old ExecStart
        forwarder = lab.file(f"{unit_dir}/webhosting-socket@.service").content_string
        assert "userpod forward" in forwarder and "socket-forward" not in forwarder
        failed = lab.run(
            f"systemctl --user --machine={name}@ list-units --failed --plain --no-legend"
        )
        assert failed.stdout.strip() == "", failed.stdout
        active = lab.run(f"systemctl --user --machine={name}@ is-active webhosting-pod.service")
        assert active.stdout.strip() == "active"
