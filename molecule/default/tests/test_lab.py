"""The lab itself: a real systemd host with podman, trusting the lab CA."""


def test_systemd_is_running(lab):
    state = lab.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state


def test_no_failed_units(lab):
    out = lab.check_output("systemctl list-units --state=failed --no-legend --plain")
    assert out.strip() == ""


def test_is_not_the_machine_itself(lab):
    # PID 1 inside the lab host is its own systemd, in its own PID namespace.
    assert lab.file("/proc/1/comm").content_string.strip() == "systemd"
    assert lab.run("hostname").stdout.strip() == lab.backend.name


def test_podman_present(lab):
    assert lab.run("podman --version").rc == 0


def test_acme_ca_reachable_over_trusted_tls(lab):
    # curl verifies Pebble's listener certificate against the host's trust store.
    result = lab.run("curl -sSf https://pebble.example.test:14000/dir")
    assert result.rc == 0, result.stderr
    assert "newAccount" in result.stdout


def test_registry_requires_auth(lab):
    result = lab.run(
        "curl -s -o /dev/null -w '%{http_code}' https://registry.example.test:5000/v2/"
    )
    assert result.stdout.strip() == "401"
