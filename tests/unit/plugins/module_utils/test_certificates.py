"""Certificates of many hostings (plugins/module_utils/certificates.py): real self-signed
certificates read back with the same reader the roles decide by, and certbot's command
through a stand-in (the real certbot against the lab's ACME CA runs in molecule)."""

import os
import stat
import subprocess

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.certificates import (
    CertificateError,
    issue,
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
