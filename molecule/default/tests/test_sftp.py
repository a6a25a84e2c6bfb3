"""Chrooted SFTP, from the outside: OpenSSH's own clients (sftp, ssh, scp) inside each lab
host against its sshd on 127.0.0.1, with the lab's tenant keys (labctl up made them; the
inventory gives alpha key 1 and beta key 2; key 3 belongs to nobody until a tenant adds
it). What a tenant does here is what docs/tenant.md tells them to do.

The tests restore what they change: alpha serves image version 1 and has no tenant keys
at the end.
"""

import re
import shlex

import pytest

ALPHA, BETA = "alpha", "beta"
ROOT = f"/srv/hostings/{ALPHA}"
CONFIG = "/private/container-config"
WORK = "/root/sftp-work"
DROP_IN = "/etc/ssh/sshd_config.d/50-webhosting-pods.conf"
CLIENT = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
SSHD_T = "sshd -T -C user={user},host=client.example.test,addr=127.0.0.1"


def effective(lab, user, config=None):
    """sshd's effective settings for a connection of user (sshd -T -C), as a dict."""
    extra = f" -f {config}" if config else ""
    out = lab.check_output(SSHD_T.format(user=user) + extra)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def local_file(lab, name, text, mode="0644"):
    """A file for the client to upload, in the lab host's WORK directory."""
    path = f"{WORK}/{name}"
    lab.check_output(
        f"mkdir -p {WORK} && printf %s {shlex.quote(text)} > {path} && chmod {mode} {path}"
    )
    return path


def sha(lab, path):
    return lab.check_output(f"sha256sum {shlex.quote(path)}").split()[0]


def https(lab, path, timeout=5):
    res = lab.run(f"curl -sS --max-time {timeout} https://{ALPHA}.example.test{path}")
    return res.stdout if res.rc == 0 else None


def log_has(lab, name, text):
    res = lab.run(f"cat {ROOT}/logs/{name}")
    return res.rc == 0 and text in res.stdout


def test_sshd_chroots_hosting_users_to_internal_sftp_only(lab):
    settings = effective(lab, ALPHA)
    assert settings["chrootdirectory"] in ("/srv/hostings/%u", ROOT)
    assert settings["forcecommand"].startswith("internal-sftp -u 0007")
    assert settings["authenticationmethods"] == "publickey"
    for key in (
        "passwordauthentication",
        "kbdinteractiveauthentication",
        "allowtcpforwarding",
        "allowstreamlocalforwarding",
        "allowagentforwarding",
        "x11forwarding",
        "permittunnel",
        "permittty",
        "permituserrc",
        "gatewayports",
    ):
        assert settings[key] == "no", key
    assert settings["disableforwarding"] == "yes"
    assert settings["permitopen"] == "none"
    assert settings["permitlisten"] == "none"
    assert "/etc/webhosting-pods/hostings/%u/authorized_keys" in settings["authorizedkeysfile"]


def test_root_gets_the_same_sshd_settings_without_our_drop_in(lab):
    """The drop-in changes nothing for root: sshd -T for root with the host's configuration
    equals sshd -T for root with every drop-in except ours."""
    lab.check_output(
        "rm -rf /tmp/sshd-without && mkdir -p /tmp/sshd-without/d"
        " && for f in /etc/ssh/sshd_config.d/*.conf; do"
        f' [ "$f" = {DROP_IN} ] || cp "$f" /tmp/sshd-without/d/;'
        " done"
        " && sed 's#/etc/ssh/sshd_config.d/#/tmp/sshd-without/d/#' /etc/ssh/sshd_config"
        " > /tmp/sshd-without/sshd_config"
    )
    assert effective(lab, "root") == effective(lab, "root", "/tmp/sshd-without/sshd_config")
    # and the drop-in is really included: without it, alpha gets no chroot
    assert "chrootdirectory" not in {
        k for k, v in effective(lab, ALPHA, "/tmp/sshd-without/sshd_config").items() if v != "none"
    }


def test_tenant_sees_their_hosting_and_nothing_else(lab, sftp):
    res = sftp(lab, ALPHA, 1, ["pwd", "ls -1a /"])
    assert res.rc == 0, res.stderr
    assert "Remote working directory: /" in res.stdout
    for name in ("www", "data", "logs", "private", "scripts", "tmp"):
        assert re.search(rf"^/?{name}$", res.stdout, re.M), res.stdout
    for command in (
        "get /etc/passwd /tmp/sftp-passwd",
        "ls /srv/hostings/beta",
        "ls ../beta/private",
        f"get ../../{BETA}/private/container-config/pod-{BETA}.yaml /tmp/sftp-other",
    ):
        refused = sftp(lab, ALPHA, 1, [command])
        assert refused.rc != 0, command
    assert not lab.file("/tmp/sftp-passwd").exists
    assert not lab.file("/tmp/sftp-other").exists


def test_safe_upload_restart_and_restart_log(lab, sftp, wait_until):
    """The pod file replaced the way WinSCP does (temporary name, then rename), the restart
    trigger created: the new pod serves through nginx within seconds. Then back to the old
    file, deleted and re-created the way other clients do."""
    pod = f"{CONFIG}/pod-{ALPHA}.yaml"
    original = lab.file(ROOT + pod).content_string
    assert "httpd:1" in original
    changed = local_file(lab, "pod-v2.yaml", original.replace("httpd:1", "httpd:2"))
    empty = local_file(lab, "empty", "")
    res = sftp(
        lab,
        ALPHA,
        1,
        [
            f"put {changed} {pod}.filepart",
            f"rename {pod}.filepart {pod}",
            f"put {empty} /scripts/pod_restart/pod_restart.run",
        ],
    )
    assert res.rc == 0, res.stderr
    wait_until(
        "version 2 through nginx", lambda: (https(lab, "/version") or "").strip() == "2", 90, 1
    )
    stat = lab.file(ROOT + pod)
    assert (stat.user, stat.group, stat.mode) == (ALPHA, ALPHA, 0o640)
    wait_until(
        "the restart log", lambda: log_has(lab, "pod_restart.log", "pod restarted (trigger)"), 30, 1
    )
    res = sftp(lab, ALPHA, 1, [f"get /logs/pod_restart.log {WORK}/restart.log"])
    assert (
        res.rc == 0 and "pod restarted (trigger)" in lab.file(f"{WORK}/restart.log").content_string
    )

    back = local_file(lab, "pod-v1.yaml", original)
    res = sftp(
        lab,
        ALPHA,
        1,
        [f"rm {pod}", f"put {back} {pod}", f"put {empty} /scripts/pod_restart/pod_restart.run"],
    )
    assert res.rc == 0, res.stderr
    wait_until(
        "version 1 through nginx", lambda: (https(lab, "/version") or "").strip() == "1", 90, 1
    )
    assert lab.file(ROOT + pod).content_string == original


def test_uploaded_web_file_is_served(lab, sftp):
    page = local_file(lab, "hello.txt", "uploaded over sftp\n")
    res = sftp(lab, ALPHA, 1, ["-mkdir /www/static", f"put {page} /www/static/sftp-hello.txt"])
    assert res.rc == 0, res.stderr
    try:
        assert https(lab, "/static/sftp-hello.txt") == "uploaded over sftp\n"
    finally:
        sftp(lab, ALPHA, 1, ["rm /www/static/sftp-hello.txt"])


def test_provider_files_cannot_be_replaced_or_edited(lab, sftp):
    system = f"{CONFIG}/system-{ALPHA}.yaml"
    protected = [f"{ROOT}{system}"]
    before = [sha(lab, p) for p in protected]
    bogus = local_file(lab, "bogus", "name: evil\n")
    for commands in (
        [f"put {bogus} {CONFIG}/new.tmp", f"rename {CONFIG}/new.tmp {system}"],
        [f"rm {system}"],
        [f"put {bogus} {system}"],
        [f"rename {system} {CONFIG}/old.yaml"],
        [f"chmod 666 {system}"],
        [f"chmod 777 {CONFIG}"],
        [f"put {bogus} /private/app.yaml"],
        [f"put {bogus} /evil"],
        [f"symlink /etc/shadow {system}"],
    ):
        res = sftp(lab, ALPHA, 1, commands)
        assert res.rc != 0, commands
    sftp(lab, ALPHA, 1, [f"-rm {CONFIG}/new.tmp"])
    assert [sha(lab, p) for p in protected] == before
    assert not lab.file(f"{ROOT}/evil").exists
    assert lab.file(f"{ROOT}{CONFIG}").mode == 0o1770


def test_no_shell_no_scp_outside_no_forwarding(lab, ssh):
    res = ssh(lab, ALPHA, 1, command="id")
    assert "uid=" not in res.stdout
    res = ssh(lab, ALPHA, 1, options="-tt", command="/bin/sh -c id")
    assert "uid=" not in res.stdout
    # scp in both protocols: nothing lands outside the chroot
    for flag in ("", "-O"):
        res = lab.run(
            f"timeout 30 scp {flag} {CLIENT} -i /root/tenant-keys/1 /etc/hostname"
            f" {ALPHA}@127.0.0.1:/etc/scp-was-here"
        )
        # refused by the server (sftp only, chrooted), not lost to a failed login
        assert res.rc != 0, flag
        assert "Permission denied (publickey" not in res.stderr, res.stderr
        assert res.stderr.strip(), flag
    assert not lab.file("/etc/scp-was-here").exists
    assert not lab.file(f"{ROOT}/etc").exists
    # stdio forwarding to the host's own sshd (which listens): refused
    res = ssh(lab, ALPHA, 1, options="-W 127.0.0.1:22")
    assert res.rc != 0 and "forwarding failed" in res.stderr, res.stderr
    res = ssh(
        lab, ALPHA, 1, options="-N -o ExitOnForwardFailure=yes -R 127.0.0.1:18091:127.0.0.1:22"
    )
    assert res.rc != 0 and "forwarding failed" in res.stderr, res.stderr
    # a local forward to the pod's unix socket: the channel is refused, nothing answers
    res = lab.run(
        f"timeout 30 ssh {CLIENT} -i /root/tenant-keys/1 -N"
        f" -L 127.0.0.1:18090:/run/webhosting-pods/{ALPHA}/8080 {ALPHA}@127.0.0.1"
        " </dev/null & pid=$!; sleep 3; curl -sS --max-time 5 http://127.0.0.1:18090/version;"
        " rc=$?; kill $pid; exit $rc"
    )
    assert res.rc != 0 and res.stdout.strip() != "1"


def test_only_the_hostings_own_keys_log_in(lab, sftp, ssh, sftp_refused, refused_source):
    res = ssh(
        lab,
        ALPHA,
        1,
        options="-o PreferredAuthentications=password,keyboard-interactive"
        f" -o PubkeyAuthentication=no -o BindAddress={refused_source()}",
    )
    assert res.rc == 255 and "Permission denied (publickey)" in res.stderr, res.stderr
    assert sftp_refused(lab, ALPHA, 2)  # beta's key
    assert sftp_refused(lab, ALPHA, 3)  # nobody's key
    assert sftp(lab, BETA, 2, ["ls /"]).rc == 0
    assert sftp_refused(lab, BETA, 1)
    assert sftp_refused(lab, "root", 1)


def test_tenant_key_file_and_its_trigger(lab, sftp, wait_until, sftp_refused):
    keys = "/scripts/ssh_keys/authorized_keys"
    trigger = "/scripts/ssh_keys/ssh_keys.run"
    key3 = lab.file("/root/tenant-keys/3.pub").content_string.strip()
    empty = local_file(lab, "empty", "")
    original = lab.file(ROOT + keys).content_string
    assert original.startswith("# Your SFTP keys")
    # beta's admin turned tenant keys off
    assert lab.run("systemctl is-enabled webhosting-keys@beta.path").stdout.strip() != "enabled"
    assert not lab.file(f"/srv/hostings/{BETA}{keys}").exists

    def apply(text, expect):
        sftp(lab, ALPHA, 1, ["-rm /logs/ssh_keys.log"])
        new = local_file(lab, "keys", text)
        res = sftp(
            lab,
            ALPHA,
            1,
            [f"put {new} {keys}.tmp", f"rename {keys}.tmp {keys}", f"put {empty} {trigger}"],
        )
        assert res.rc == 0, res.stderr
        wait_until(
            f"'{expect}' in logs/ssh_keys.log",
            lambda: log_has(lab, "ssh_keys.log", expect),
            30,
            0.5,
        )

    assert sftp_refused(lab, ALPHA, 3)
    try:
        apply(original + key3 + "\n", "1 key applied")
        assert sftp(lab, ALPHA, 3, ["ls /"]).rc == 0
        assert sftp(lab, ALPHA, 1, ["ls /"]).rc == 0  # the inventory's key still works
        apply(f'{key3}\ncommand="/bin/sh" {key3}\n', "NOT applied")
        assert log_has(lab, "ssh_keys.log", "line 2: starts with options")
        assert sftp(lab, ALPHA, 3, ["ls /"]).rc == 0  # the last good list still holds
        # a trigger the tenant turns into a full directory cannot make the unit loop
        res = sftp(lab, ALPHA, 1, [f"mkdir {trigger}", f"put {empty} {trigger}/x"])
        assert res.rc == 0, res.stderr
        wait_until(
            "the trigger directory moved aside",
            lambda: not lab.file(ROOT + trigger).exists,
            30,
            0.5,
        )
        assert lab.service("webhosting-keys@alpha.path").is_running
    finally:
        lab.run(f"rm -rf {ROOT}{trigger}.not-a-trigger-*")
        apply(original, "0 keys applied")
    assert sftp_refused(lab, ALPHA, 3)
    owner = lab.file(f"/etc/webhosting-pods/hostings/{ALPHA}/tenant_keys")
    assert (owner.user, owner.mode) == ("root", 0o640)


@pytest.mark.parametrize("user", [ALPHA, BETA])
def test_hosting_users_are_in_the_sftp_group_only(lab, user):
    groups = lab.check_output(f"id -nG {user}").split()
    assert sorted(groups) == sorted([user, "webhosting-sftp"])
    assert lab.user(user).shell == "/usr/sbin/nologin"


def test_what_a_container_writes_under_data_is_the_tenants_to_manage(lab, sftp):
    """A container process with umask 077 (a subordinate uid owns what it writes) creates a
    folder and a file under data/: the tenant reads, removes and replaces them over SFTP
    (data/'s default ACL gives the hosting user rwx whatever the creator's umask)."""
    podman = (
        "setpriv --reuid=beta --regid=beta --init-groups env USER=beta"
        " XDG_RUNTIME_DIR=/run/user/$(id -u beta)"
        " XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/beta/config"
        " HOME=/var/lib/webhosting-pods/users/beta PODMAN_IGNORE_CGROUPSV1_WARNING=1 podman"
    )
    made = lab.run(
        f"{podman} exec beta-db /bin/sh -c"
        " 'umask 077 && mkdir -p /data/share/dumps && echo dump-1 > /data/share/dumps/all.sql'"
    )
    assert made.rc == 0, made.stderr
    stat = lab.file("/srv/hostings/beta/data/share/dumps/all.sql")
    assert stat.user != BETA  # the container's subordinate uid
    replacement = local_file(lab, "all.sql", "replaced by the tenant\n")
    res = sftp(
        lab,
        BETA,
        2,
        [
            f"get /data/share/dumps/all.sql {WORK}/got.sql",
            f"put {replacement} /data/share/dumps/all.sql.new",
            "rename /data/share/dumps/all.sql.new /data/share/dumps/all.sql",
            "rm /data/share/dumps/all.sql",
            "rmdir /data/share/dumps",
            "rmdir /data/share",
        ],
    )
    assert res.rc == 0, res.stderr
    assert lab.file(f"{WORK}/got.sql").content_string == "dump-1\n"
    assert not lab.file("/srv/hostings/beta/data/share").exists
