"""The tenant's own files in private/container-config/, as the provider's tenant
documentation names them, used from the outside: over SFTP as alpha's tenant, applied by the
tenant's own restart trigger, checked in what the container and podman really get.

- `alpha-web.env`: the tenant's env file for the container web; the provider's value of a
  variable both set (GREETING, inventory env_files) wins.
- `auth-alpha-registry.yaml`: the tenant's registry logins, merged with the provider's; a
  login for a repository path of the lab registry is more specific than the provider's login
  for the registry, so podman uses the tenant's: a wrong password makes the pull fail, the
  right one makes it work.
- A malformed file of either kind: the restart is refused with a line naming the file and
  the field, and the running pod is not touched.
Everything is put back at the end.
"""

import base64
import json
import shlex

import pytest

NAME = "alpha"
UID = 10001
ROOT = f"/srv/hostings/{NAME}"
CONFIG = "/private/container-config"
ENV = f"{CONFIG}/{NAME}-web.env"
AUTH = f"{CONFIG}/auth-{NAME}-registry.yaml"
WORK = "/root/tenant-files-work"
UNIT = "webhosting-pod.service"
REGISTRY = "registry.example.test:5000"


def as_tenant(command):
    env = [
        f"USER={NAME}",
        f"XDG_RUNTIME_DIR=/run/user/{UID}",
        f"XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{NAME}/config",
        f"HOME=/var/lib/webhosting-pods/users/{NAME}",
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
    ]
    return (
        f"cd / && setpriv --reuid={UID} --regid={UID} --init-groups "
        f"env {' '.join(env)} /bin/sh -c {shlex.quote(command)}"
    )


def main_pid(lab):
    cmd = f"systemctl --user --machine={NAME}@ show -p MainPID --value {UNIT}"
    return lab.check_output(cmd).strip()


def container_env(lab):
    out = lab.check_output(
        as_tenant(f"podman inspect --format '{{{{json .Config.Env}}}}' {NAME}-web")
    )
    return dict(item.split("=", 1) for item in json.loads(out))


def restart_log(lab):
    return lab.run(f"cat {ROOT}/logs/pod_restart.log").stdout


@pytest.fixture
def restart(lab, sftp, wait_until):
    """restart(puts) -> the new lines of logs/pod_restart.log: upload each (name, text) of
    puts over SFTP (None: remove the file), then create the restart trigger and wait until
    the restart is done or refused."""

    def run(puts):
        lab.check_output(f"mkdir -p {WORK} && touch {WORK}/empty && chmod 0644 {WORK}/empty")
        commands = []
        for i, (name, text) in enumerate(puts):
            if text is None:
                commands.append(f"-rm {name}")
                continue
            local = f"{WORK}/upload-{i}"
            lab.check_output(f"printf %s {shlex.quote(text)} > {local} && chmod 0644 {local}")
            commands.append(f"put {local} {name}")
        before = restart_log(lab)
        commands.append(f"put {WORK}/empty /scripts/pod_restart/pod_restart.run")
        res = sftp(lab, NAME, 1, commands)
        assert res.rc == 0, res.stderr

        def done():
            new = restart_log(lab)[len(before) :]
            finished = ("pod restarted", "NOT restarted", "did not start again")
            return new if any(word in new for word in finished) else None

        return wait_until("the tenant's restart", done, 120, 1)

    return run


def test_the_seeded_files_carry_the_provider_documentations_names(lab):
    listing = lab.check_output(f"ls {ROOT}{CONFIG}").split()
    assert {f"pod-{NAME}.yaml", f"system-{NAME}.yaml", f"auth-{NAME}-registry.yaml"} <= set(listing)
    assert "pod.yaml" not in listing and "system.yaml" not in listing
    seed = lab.file(f"{ROOT}{AUTH}")
    assert (seed.uid, seed.mode) == (UID, 0o640)
    # the provider's password is in none of the tenant's files
    provider = json.loads(
        lab.file(f"/etc/webhosting-pods/hostings/{NAME}/auth.json").content_string
    )
    token = provider["auths"][REGISTRY]["auth"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    res = lab.run(f"grep -rlF -- {shlex.quote(password)} {ROOT}")
    assert res.stdout.strip() == "", res.stdout
    # the provider's env file is outside the tenant's tree, readable by the hosting user
    env = lab.file(f"/etc/webhosting-pods/hostings/{NAME}/env/{NAME}-web.env")
    assert (env.uid, env.gid, env.mode) == (0, UID, 0o640)
    assert not lab.file(f"{ROOT}{ENV}").exists or lab.file(f"{ROOT}{ENV}").uid == UID


def test_the_tenants_env_file_applies_and_the_providers_value_wins(lab, restart):
    try:
        text = "TENANT_SETTING=from the tenant\nGREETING=the tenant's try\n"
        new = restart([(ENV, text)])
        assert "pod restarted (trigger)" in new, new
        env = container_env(lab)
        assert env["TENANT_SETTING"] == "from the tenant"
        assert env["GREETING"] == "hello from alpha"  # the provider's (inventory) value
        assert "GREETING is set by your provider" in new
        # malformed: refused with file and line, the running pod untouched
        pid = main_pid(lab)
        new = restart([(ENV, "TENANT_SETTING=ok\nthis is not a setting\n")])
        assert "NOT restarted" in new, new
        assert f"{ROOT}{ENV}:2:" in new, new
        assert main_pid(lab) == pid
        assert container_env(lab)["TENANT_SETTING"] == "from the tenant"
    finally:
        new = restart([(ENV, None)])
        assert "pod restarted (trigger)" in new, new
    assert "TENANT_SETTING" not in container_env(lab)


def test_the_tenants_registry_login_applies_and_a_broken_file_is_refused(lab, restart):
    original = lab.file(f"{ROOT}{AUTH}").content_string
    merged_file = f"/var/lib/webhosting-pods/state/{NAME}/auth.json"
    provider = json.loads(lab.file(merged_file).content_string)["auths"][REGISTRY]["auth"]
    user, password = base64.b64decode(provider).decode().split(":", 1)
    scoped = f"{REGISTRY}/lab"
    try:
        # a wrong password for the repository path: podman uses the tenant's login and fails
        pid = main_pid(lab)
        wrong = f"{scoped}:\n  user: {user}\n  password: not-the-password\n"
        new = restart([(AUTH, wrong)])
        assert "cannot pull" in new and "NOT restarted" in new, new
        assert scoped in json.loads(lab.file(merged_file).content_string)["auths"]
        assert main_pid(lab) == pid
        # the right one: pulled with the tenant's login, restarted
        right = f"{scoped}:\n  user: {user}\n  password: {json.dumps(password)}\n"
        new = restart([(AUTH, right)])
        assert "pod restarted (trigger)" in new, new
        auths = json.loads(lab.file(merged_file).content_string)["auths"]
        assert set(auths) == {REGISTRY, scoped}
        assert lab.file(merged_file).mode == 0o600
        # malformed: refused, naming the file and the field
        pid = main_pid(lab)
        new = restart([(AUTH, f"{scoped}:\n  user: {user}\n  pasword: x\n")])
        assert f"NOT restarted: private/container-config/auth-{NAME}-registry.yaml" in new, new
        assert ".pasword: unknown field" in new and ".password: required" in new, new
        assert main_pid(lab) == pid
        # the provider's login for the same registry wins over the tenant's
        new = restart([(AUTH, f"{REGISTRY}:\n  user: {user}\n  password: wrong\n")])
        assert "pod restarted (trigger)" in new, new
        auths = json.loads(lab.file(merged_file).content_string)["auths"]
        assert auths == {REGISTRY: {"auth": provider}}
    finally:
        new = restart([(AUTH, original)])
        assert "pod restarted (trigger)" in new, new
