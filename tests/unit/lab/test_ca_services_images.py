"""labkit.ca, labkit.services and labkit.images: the files made on this machine.

The lab CA, the services' certificates, configs and htpasswd, and the test images' root
file system are made with openssl, htpasswd and busybox here, without a lab host.
"""

import gzip
import hashlib
import io
import json
import shutil
import stat
import subprocess
import tarfile

import pytest
from labkit import ca, images, services

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
needs_htpasswd = pytest.mark.skipif(
    not shutil.which("htpasswd"), reason="htpasswd (apache2-utils) not installed"
)


def openssl(*args):
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@needs_openssl
def test_ensure_ca_makes_the_ca_once(lab):
    d = ca.ensure_ca()
    assert d == str(lab.cache / "ca")
    pem, key = lab.cache / "ca" / "ca.pem", lab.cache / "ca" / "ca.key"
    assert "CN = webhosting.pods lab CA" in openssl("x509", "-in", str(pem), "-noout", "-subject")
    assert "CA:TRUE" in openssl("x509", "-in", str(pem), "-noout", "-ext", "basicConstraints")
    assert stat.S_IMODE((lab.cache / "ca").stat().st_mode) == 0o700
    before = pem.read_bytes(), key.read_bytes()
    assert ca.ensure_ca() == d
    assert (pem.read_bytes(), key.read_bytes()) == before  # reused, not made again
    assert [p.name for p in lab.cache.iterdir() if p.name.startswith(".ca-")] == []


@needs_openssl
def test_issue_cert_signed_by_the_lab_ca(lab, tmp_path):
    out = tmp_path / "services"
    out.mkdir()
    cert, key = ca.issue_cert(str(out), "registry", ["registry.example.test", "localhost"], ["::1"])
    assert (cert, key) == (str(out / "registry-cert.pem"), str(out / "registry-key.pem"))
    assert sorted(p.name for p in out.iterdir()) == ["registry-cert.pem", "registry-key.pem"]
    assert stat.S_IMODE(out.joinpath("registry-key.pem").stat().st_mode) == 0o600
    ca_pem = lab.cache / "ca" / "ca.pem"
    assert openssl("verify", "-CAfile", str(ca_pem), cert).strip() == f"{cert}: OK"
    san = openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName")
    assert "DNS:registry.example.test, DNS:localhost, IP Address:0:0:0:0:0:0:0:1" in san
    assert "CN = registry.example.test" in openssl("x509", "-in", cert, "-noout", "-subject")
    ext = openssl("x509", "-in", cert, "-noout", "-ext", "basicConstraints,extendedKeyUsage")
    assert "CA:FALSE" in ext and "TLS Web Server Authentication" in ext
    # the key belongs to the certificate
    assert openssl("pkey", "-in", key, "-pubout") == openssl(
        "x509", "-in", cert, "-noout", "-pubkey"
    )


@needs_openssl
@needs_htpasswd
def test_prepare_service_files(lab):
    hd = lab.host_dir("demo")
    hd.mkdir(parents=True)
    password = services.prepare_service_files("demo", {"cert_validity": 3600})
    sd = hd / "services"
    assert stat.S_IMODE(sd.stat().st_mode) == 0o700
    pwfile = hd / "registry-password"
    assert pwfile.read_text() == password + "\n"
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o600
    assert len(password) >= 24
    # htpasswd (bcrypt) accepts the password of labuser and nothing else
    check = ["htpasswd", "-v", "-b", str(sd / "htpasswd"), "labuser"]
    assert subprocess.run([*check, password], capture_output=True).returncode == 0
    assert subprocess.run([*check, password + "x"], capture_output=True).returncode != 0
    assert (sd / "htpasswd").read_text().startswith("labuser:$2y$")

    pebble = json.loads((sd / "pebble-config.json").read_text())["pebble"]
    assert pebble["listenAddress"] == "127.0.0.1:14000"
    assert pebble["managementListenAddress"] == "127.0.0.1:15000"
    assert (pebble["httpPort"], pebble["tlsPort"]) == (80, 443)
    assert pebble["certificate"] == str(sd / "pebble-cert.pem")
    assert pebble["certificateValidityPeriod"] == 3600

    registry = json.loads((sd / "registry.yml").read_text())  # JSON is YAML
    assert stat.S_IMODE((sd / "registry.yml").stat().st_mode) == 0o600
    assert registry["http"]["addr"] == "127.0.0.1:5000"
    assert registry["http"]["tls"]["certificate"] == str(sd / "registry-cert.pem")
    assert registry["auth"]["htpasswd"]["path"] == str(sd / "htpasswd")  # a file, not a dir
    assert registry["storage"]["filesystem"]["rootdirectory"] == str(hd / "registry-storage")
    assert (hd / "registry-storage").is_dir()
    assert registry["http"]["secret"] == (sd / "registry-http-secret").read_text()
    assert (hd / "lab-ca.pem").read_bytes() == (lab.cache / "ca" / "ca.pem").read_bytes()

    # again (a reboot): same password and certificates; the validity can change
    cert = (sd / "registry-cert.pem").read_bytes()
    assert services.prepare_service_files("demo", {"cert_validity": 0}) == password
    assert (sd / "registry-cert.pem").read_bytes() == cert
    pebble = json.loads((sd / "pebble-config.json").read_text())["pebble"]
    assert "certificateValidityPeriod" not in pebble


@needs_openssl
@needs_htpasswd
def test_a_host_sharing_credentials_takes_the_others_password_and_keys(lab):
    first, second = lab.host_dir("move-a"), lab.host_dir("move-b")
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    password = services.prepare_service_files("move-a", {})
    assert services.prepare_service_files("move-b", {"share_with": "move-a"}) == password
    check = ["htpasswd", "-v", "-b", str(second / "services" / "htpasswd"), "labuser", password]
    assert subprocess.run(check, capture_output=True).returncode == 0
    (first / "tenant-keys").mkdir()
    (first / "tenant-keys" / "1").write_text("private\n")
    (first / "tenant-keys" / "1.pub").write_text("ssh-ed25519 AAAA lab tenant 1 of move-a\n")
    assert services.shared({"share_with": "move-a"}, "tenant-keys/1.pub").startswith("ssh-ed25519")
    assert services.shared({}, "tenant-keys/1.pub") is None
    with pytest.raises(services.LabError, match="boot move-c first"):
        services.shared({"share_with": "move-c"}, "registry-password")


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("/usr/bin/docker-registry", "/usr/bin/registry")),
    reason="docker-registry not installed",
)
def test_service_specs(lab):
    specs = services.service_specs("demo", {})
    assert list(specs) == list(services.SERVICES)
    sd = lab.host_dir("demo") / "services"
    assert specs["dns"]["ports"] == [("udp", 53), ("tcp", 8055)]
    assert specs["dns"]["argv"][0] == "/usr/bin/pebble-challtestsrv"
    assert specs["pebble"]["argv"][1:3] == ["-config", str(sd / "pebble-config.json")]
    assert specs["pebble"]["env"] == {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    assert specs["registry"]["argv"][1:] == ["serve", str(sd / "registry.yml")]
    assert specs["registry"]["ports"] == [("tcp", 5000)]
    for key, spec in specs.items():
        assert spec["log"] == str(sd / f"{key}.log")


def test_image_ref_and_config():
    assert images.image_ref("2") == "registry.example.test:5000/lab/httpd:2"
    cfg = images.image_config("2", "sha256:" + "0" * 64)
    assert cfg["os"] == "linux"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}
    c = cfg["config"]
    assert c["Labels"]["org.opencontainers.image.version"] == "2"
    assert c["User"] == "1000:1000"
    assert c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["Cmd"][:2] == ["/bin/sh", "-c"]
    assert "trap 'exit 0' TERM INT" in c["Cmd"][2]  # stops at once, not after 10 s
    assert "/bin/busybox httpd -f -p 8080 -h /www" in c["Cmd"][2]


@pytest.mark.skipif(not shutil.which("busybox", path="/bin"), reason="busybox-static missing")
def test_oci_image_blobs_match_the_manifest():
    manifest, blobs = images.oci_image("1")
    assert images.oci_image("1") == (manifest, blobs)  # reproducible digests
    m = json.loads(manifest)
    assert m["mediaType"] == images.OCI_MANIFEST
    refs = [m["config"]] + m["layers"]
    assert {r["digest"] for r in refs} == set(blobs)
    for r in refs:
        data = blobs[r["digest"]]
        assert r["size"] == len(data)
        assert r["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    config = json.loads(blobs[m["config"]["digest"]])
    layer_tar = gzip.decompress(blobs[m["layers"][0]["digest"]])
    assert layer_tar == images.image_rootfs_tar("1")
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]


@pytest.mark.skipif(not shutil.which("busybox", path="/bin"), reason="busybox-static missing")
def test_image_rootfs_tar():
    data = images.image_rootfs_tar("2")
    assert images.image_rootfs_tar("2") == data  # reproducible: fixed owners and times
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}

        def text(name):
            return tar.extractfile(name).read().decode()

        assert members["bin/busybox"].isfile()
        assert members["bin/busybox"].mode == 0o755
        assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
        assert members["bin/httpd"].linkname == "busybox"
        assert members["tmp"].mode == 0o1777
        assert (members["home/lab"].uid, members["home/lab"].gid) == (1000, 1000)
        assert all(m.mtime == 946684800 for m in members.values())
        assert "lab:x:1000:1000:lab:/home/lab:/bin/sh\n" in text("etc/passwd")
        assert text("www/version") == "2\n"
        assert text("www/health") == "ok\n"
        assert "version 2" in text("www/index.html")
        assert members["www/cgi-bin/env"].mode == 0o755
        assert "echo version=2\n" in text("www/cgi-bin/env")
        assert not [n for n in members if n.startswith("/") or ".." in n.split("/")]
