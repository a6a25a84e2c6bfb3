"""Certificates of many hostings (plugins/module_utils/certificates.py): real self-signed
certificates read back with the same reader the roles decide by, and certbot's command
through a stand-in (the real certbot against the lab's ACME CA runs in molecule)."""

import os
import stat
import subprocess
import threading
import time

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.certificates import (
    RUN_PREFIX,
    CertificateError,
    adopt,
    issue,
    issue_all,
    lineage_exists,
    renewal_text,
    selfsigned,
)
from ansible_collections.webhosting.pods.plugins.module_utils.host_state import read_certificate

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the certificate directory is root's")


def item(tmp_path, domains=("b.test", "a.test")):
    directory = tmp_path / "shop"
    return {
        "name": "shop",
        "dir": str(directory),
        "key": str(directory / "selfsigned.key"),
        "cert": str(directory / "selfsigned.crt"),
        "domains": list(domains),
        "days": 10,
    }


def test_selfsigned_is_made_once_for_its_domains(tmp_path):
    it = item(tmp_path)
    assert selfsigned(it) is True
    cert = read_certificate(it["cert"])
    assert cert["dns_names"] == ["a.test", "b.test"]
    assert stat.S_IMODE(os.stat(it["dir"]).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(it["key"]).st_mode) == 0o600
    assert b"PRIVATE KEY" in open(it["key"], "rb").read()
    assert selfsigned(it) is False  # the same names: left alone
    assert selfsigned(item(tmp_path, ["c.test"])) is True
    assert read_certificate(it["cert"])["dns_names"] == ["c.test"]


def test_a_link_in_place_of_the_directory_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, tmp_path / "shop")
    with pytest.raises(CertificateError, match="not a directory of root"):
        selfsigned(item(tmp_path))
    assert list(target.iterdir()) == []


def test_certbot_gets_the_eab_key_in_a_root_only_file_removed_after(tmp_path):
    conf = tmp_path / "shop.eab.ini"
    seen = {}

    def run(argv, timeout):
        seen["argv"] = argv
        seen["mode"] = stat.S_IMODE(os.stat(conf).st_mode)
        seen["text"] = conf.read_text()
        return subprocess.CompletedProcess(argv, 0, "", "")

    issue(
        {
            "argv": ["certbot", "certonly"],
            "eab_conf": str(conf),
            "eab_kid": "kid",
            "eab_hmac_key": "secret",
        },
        run=run,
    )
    assert seen["argv"] == ["certbot", "certonly", "--config", str(conf)]
    assert seen["mode"] == 0o600 and "eab-hmac-key = secret" in seen["text"]
    assert not conf.exists()


def test_certbot_failure_says_why():
    def run(argv, timeout):
        return subprocess.CompletedProcess(argv, 1, "", "Challenge failed for domain a.test")

    with pytest.raises(CertificateError, match="exited with 1: Challenge failed for domain a.test"):
        issue({"argv": ["certbot"]}, run=run)


# certbot side by side (issue_all): a stand-in that lays out what certbot 2.x and 4.x write
# for a new lineage (archive files, relative live links, renewal settings naming its
# directories and account) and counts the runs that overlap.
ACCOUNT = "3f0c1d"


class StandIn:
    def __init__(self, letsencrypt, fail=(), pause=0.2):
        self.letsencrypt = str(letsencrypt)
        self.fail = set(fail)
        self.pause = pause
        self.calls = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, argv, timeout):
        def opt(flag, default=None):
            return argv[argv.index(flag) + 1] if flag in argv else default

        name = opt("--cert-name")
        config = opt("--config-dir", self.letsencrypt)
        with self.lock:
            self.calls.append((name, config))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.pause)
            if name in self.fail:
                return subprocess.CompletedProcess(argv, 1, "", f"Challenge failed for {name}")
            account_dir = os.path.join(config, "accounts", "ca.test", "dir", ACCOUNT)
            if not os.path.isdir(account_dir):
                os.makedirs(account_dir)
                with open(os.path.join(account_dir, "private_key.json"), "w") as handle:
                    handle.write("{}")
            archive = os.path.join(config, "archive", name)
            live = os.path.join(config, "live", name)
            os.makedirs(archive)
            os.makedirs(live)
            lines = [f"archive_dir = {archive}"]
            for kind in ("cert", "privkey", "chain", "fullchain"):
                with open(os.path.join(archive, f"{kind}1.pem"), "w") as handle:
                    handle.write(f"{name} {kind}\n")
                os.symlink(f"../../archive/{name}/{kind}1.pem", os.path.join(live, f"{kind}.pem"))
                lines.append(f"{kind} = {live}/{kind}.pem")
            lines += ["", "[renewalparams]", f"account = {ACCOUNT}", "authenticator = webroot"]
            lines += ["webroot_path = /var/lib/acme,", "server = https://ca.test/dir"]
            if "--config-dir" in argv:
                lines += [
                    f"config_dir = {config}",
                    f"work_dir = {opt('--work-dir')}",
                    f"logs_dir = {opt('--logs-dir')}",
                ]
            lines += ["key_type = ecdsa", "[[webroot_map]]", f"{name}.test = /var/lib/acme"]
            os.makedirs(os.path.join(config, "renewal"), exist_ok=True)
            with open(os.path.join(config, "renewal", f"{name}.conf"), "w") as handle:
                handle.write("\n".join(lines) + "\n")
            return subprocess.CompletedProcess(argv, 0, "", "")
        finally:
            with self.lock:
                self.running -= 1


def acme_item(name, webroot, server="https://ca.test/dir"):
    argv = ["certbot", "certonly", "--cert-name", name, f"-d={name}.test"]
    return {"name": name, "argv": argv, "server": server, "webroot": str(webroot)}


def assert_lineage(letsencrypt, name):
    conf = (letsencrypt / "renewal" / f"{name}.conf").read_text()
    assert f"archive_dir = {letsencrypt}/archive/{name}\n" in conf
    assert f"fullchain = {letsencrypt}/live/{name}/fullchain.pem\n" in conf
    assert "config_dir" not in conf and "work_dir" not in conf and "logs_dir" not in conf
    assert "run-" not in conf and f"account = {ACCOUNT}" in conf
    for kind in ("cert", "privkey", "chain", "fullchain"):
        assert (letsencrypt / "live" / name / f"{kind}.pem").read_text() == f"{name} {kind}\n"


def test_new_lineages_are_issued_side_by_side_and_moved_in(tmp_path):
    letsencrypt, webroot = tmp_path / "letsencrypt", tmp_path / "acme"
    letsencrypt.mkdir()
    webroot.mkdir()
    certbot = StandIn(letsencrypt)
    names = [f"h{i}" for i in range(7)]
    issued, failures = issue_all(
        [acme_item(n, webroot) for n in names], str(letsencrypt), parallel=3, run=certbot
    )
    assert (issued, failures) == (names, {})
    # The first in place (it registers the account), the rest in run directories, three
    # at a time.
    assert certbot.calls[0] == ("h0", str(letsencrypt))
    assert all(RUN_PREFIX in config for _, config in certbot.calls[1:])
    assert certbot.most == 3
    for name in names:
        assert_lineage(letsencrypt, name)
    assert [p.name for p in letsencrypt.iterdir() if p.name.startswith(RUN_PREFIX)] == []
    assert (webroot / ".well-known" / "acme-challenge").is_dir()


def test_one_at_a_time_in_place_when_asked_or_when_a_lineage_is_there(tmp_path):
    letsencrypt, webroot = tmp_path / "letsencrypt", tmp_path / "acme"
    letsencrypt.mkdir()
    webroot.mkdir()
    certbot = StandIn(letsencrypt, pause=0)
    issued, _ = issue_all(
        [acme_item(n, webroot) for n in ("a", "b")], str(letsencrypt), parallel=1, run=certbot
    )
    assert issued == ["a", "b"] and certbot.calls == [(n, str(letsencrypt)) for n in "ab"]
    (letsencrypt / "archive" / "old").mkdir()  # a remnant certbot must see
    certbot.fail = {"old"}
    issued, failures = issue_all(
        [acme_item(n, webroot) for n in ("c", "old", "d", "e")],
        str(letsencrypt),
        parallel=4,
        run=certbot,
    )
    assert certbot.calls[2:4] == [("c", str(letsencrypt)), ("old", str(letsencrypt))]
    assert all(RUN_PREFIX in config for _, config in certbot.calls[4:])
    assert issued == ["c", "d", "e"] and "Challenge failed for old" in failures["old"]


def test_after_the_first_of_a_ca_fails_the_others_run_in_place(tmp_path):
    letsencrypt, webroot = tmp_path / "letsencrypt", tmp_path / "acme"
    letsencrypt.mkdir()
    certbot = StandIn(letsencrypt, fail={"a"}, pause=0)
    items = [acme_item(n, webroot) for n in ("a", "b", "c")]
    items.append(acme_item("d", webroot, server="https://other.test/dir"))
    issued, failures = issue_all(items, str(letsencrypt), parallel=4, run=certbot)
    assert issued == ["b", "c", "d"] and list(failures) == ["a"]
    assert certbot.calls == [(n, str(letsencrypt)) for n in ("a", "d", "b", "c")]


def test_a_failed_run_aside_leaves_nothing_behind(tmp_path):
    letsencrypt, webroot = tmp_path / "letsencrypt", tmp_path / "acme"
    letsencrypt.mkdir()
    left = letsencrypt / f"{RUN_PREFIX}killed"
    (left / "config").mkdir(parents=True)
    certbot = StandIn(letsencrypt, fail={"b"}, pause=0)
    items = [acme_item(n, webroot) for n in ("a", "b", "c")]
    issued, failures = issue_all(items, str(letsencrypt), parallel=2, run=certbot)
    assert issued == ["a", "c"] and "exited with 1" in failures["b"]
    assert not lineage_exists(str(letsencrypt), "b")
    assert sorted(p.name for p in letsencrypt.iterdir()) == [
        "accounts",
        "archive",
        "live",
        "renewal",
    ]


def test_renewal_settings_lose_the_run_and_name_the_configuration_directory():
    text = (
        "archive_dir = /le/.r/config/archive/a\ncert = /le/.r/config/live/a/cert.pem\n"
        "[renewalparams]\nconfig_dir = /le/.r/config\nwork_dir = /le/.r/work\n"
        "logs_dir=/le/.r/logs\nserver = https://ca.test/dir\n"
    )
    assert renewal_text(text, "/le/.r/config", "/le") == (
        "archive_dir = /le/archive/a\ncert = /le/live/a/cert.pem\n"
        "[renewalparams]\nserver = https://ca.test/dir\n"
    )
    with pytest.raises(CertificateError, match="still name /le/.r$"):
        renewal_text("pre_hook = ls /le/.r/work\n", "/le/.r/config", "/le")


def test_adopt_refuses_a_lineage_that_is_there_and_brings_a_new_account(tmp_path):
    letsencrypt, run = tmp_path / "le", tmp_path / "run" / "config"
    letsencrypt.mkdir()
    StandIn(letsencrypt, pause=0)(["certbot", "--cert-name", "a", "--config-dir", str(run)], 10)
    (letsencrypt / "live" / "a").mkdir(parents=True)
    with pytest.raises(CertificateError, match="has a lineage a already"):
        adopt(str(run), str(letsencrypt), "a")
    (letsencrypt / "live" / "a").rmdir()
    adopt(str(run), str(letsencrypt), "a")
    assert_lineage(letsencrypt, "a")
    assert (letsencrypt / "accounts" / "ca.test" / "dir" / ACCOUNT / "private_key.json").exists()


def test_without_a_challenge_directory_the_runs_go_one_at_a_time(tmp_path):
    letsencrypt = tmp_path / "letsencrypt"
    letsencrypt.mkdir()
    certbot = StandIn(letsencrypt, pause=0)
    webroot = tmp_path / "no-such-webroot"
    issued, _ = issue_all(
        [acme_item(n, webroot) for n in "abc"], str(letsencrypt), parallel=3, run=certbot
    )
    assert issued == ["a", "b", "c"]
    assert certbot.calls == [(n, str(letsencrypt)) for n in "abc"]
