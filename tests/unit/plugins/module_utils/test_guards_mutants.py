"""Guards that hand-made mutants got past (issue 33): each test below fails when its guard
is mutated as the issue lists (checked once by applying the mutant), and names it."""

import os
import stat

import pod_policy
import pytest
import ssh_keys
import yaml
from pod_policy import values
from pod_policy.constants import MAX_ENV_FILE_BYTES
from podspec_helpers import make_hosting, outcome, patched, shop_pod, shop_policy

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5Y3fWqKkM0pXQ3l2bqQJcY2kJm1e0cQ2n5X8yY9aT laptop"
C0 = "spec.containers[0]"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


@pytest.fixture(scope="module")
def policy(base):
    return pod_policy.load_policy(shop_policy(base))


# -- ssh_keys: one key line is one line --------------------------------------------------------
@pytest.mark.parametrize("joined", ["\n", "\r", "\r\n", "\x0b"])
def test_a_line_break_inside_a_key_line_is_refused(joined):
    """An inventory key with a line break would add a second authorized_keys line, which
    could carry options (command=, from=)."""
    with pytest.raises(ssh_keys.KeyLineError, match="control character"):
        ssh_keys.parse_key(KEY + joined + 'command="sh" ' + KEY)


# -- values: memory and CPU amounts, by their byte and core values ----------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1Mi", 1024**2),
        ("1Gi", 1024**3),
        ("1G", 1000**3),
        ("1Ti", 1024**4),
        ("1.5Gi", 3 * 2**29),
        ("0.1Gi", 107374182),
    ],
)
def test_memory_amounts_in_bytes(text, expected):
    assert pod_policy.memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["0", "0Mi", "0.0Gi", 0, "-1Mi", "1Xi", "1 Mi", "", "1e3"])
def test_memory_amounts_that_are_refused(text):
    assert values._memory(text) is None


@pytest.mark.parametrize("text", ["0", "0m", "0.000", "0.0001", "1.0001", "-1", "1e3", "1 m"])
def test_cpu_amounts_that_are_refused(text):
    assert values._cpu(text) is None


@pytest.mark.parametrize("text", ["1", "0.5", "0.001", "250m", "2"])
def test_cpu_amounts_that_are_accepted(text):
    assert values._cpu(text) == text


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_a_single_line_field_refuses_a_line_break(policy, sep):
    errors, _ = outcome(patched(shop_pod(), {C0 + ".workingDir": "/app" + sep + "x"}), policy)
    assert errors and errors[0].startswith(C0 + ".workingDir"), errors


# -- probes -------------------------------------------------------------------------------------
def probe_errors(policy, probe):
    pod = patched(shop_pod(), {C0 + ".readinessProbe": probe})
    return outcome(pod, policy)[0]


@pytest.mark.parametrize("port", ["99999", "65536", "0", 65536, 0, "00080x"])
def test_a_probe_port_out_of_range_is_refused(policy, port):
    errors = probe_errors(policy, {"httpGet": {"port": port}})
    assert any(line.startswith(C0 + ".readinessProbe.httpGet.port") for line in errors), errors


def test_a_probe_host_is_refused(policy):
    """A probe runs in the pod's network namespace, against the pod: a host would point it
    anywhere (the metadata address, another tenant)."""
    errors = probe_errors(policy, {"httpGet": {"port": 8080, "host": "169.254.169.254"}})
    assert any(".httpGet.host" in line for line in errors), errors
    errors = probe_errors(policy, {"tcpSocket": {"port": 8080, "host": "10.0.0.1"}})
    assert any(".tcpSocket.host" in line for line in errors), errors


def test_more_than_ten_probe_headers_are_refused_not_cut(policy):
    headers = [{"name": "X-H%d" % i, "value": "v"} for i in range(11)]
    errors = probe_errors(policy, {"httpGet": {"port": 8080, "httpHeaders": headers}})
    assert any("at most 10 headers" in line for line in errors), errors
    assert probe_errors(policy, {"httpGet": {"port": 8080, "httpHeaders": headers[:10]}}) == []


# -- yamlsafe: integers as podman's Kubernetes YAML reader reads them -----------------------
def test_a_leading_zero_integer_is_octal_as_in_kubernetes_yaml(policy):
    """YAML 1.1 (go-yaml v2, which podman's kube play uses) reads 01750 as octal 1000: the
    engine must check the same number that podman runs with."""
    pod = patched(shop_pod(), {C0 + ".securityContext": {"runAsUser": 424242}})
    text = yaml.safe_dump(pod).replace("424242", "01750")
    # twice: the reader caches how a plain scalar resolves, and reads it the second time
    # through its fast path
    for _ in range(2):
        result = pod_policy.render_pod(text, policy)
        assert result.pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1000
    errors, _ = outcome(text.replace("01750", "01789"), policy)  # not octal: a string
    assert errors and "runAsUser" in errors[0], errors


# -- registries: a registry name is the whole key ------------------------------------------
@pytest.mark.parametrize("key", ["r.test:5000 junk", "r.test/x?y", "r.test\tx", "R.TEST"])
def test_a_registry_key_with_junk_after_a_valid_prefix_is_refused(key):
    text = yaml.safe_dump({key: {"user": "u", "password": "p"}})
    with pytest.raises(pod_policy.PodSpecError) as raised:
        pod_policy.load_registry_logins(text, "auth.yaml")
    assert "is not a registry" in raised.value.errors[0]


def test_a_login_field_longer_than_the_cap_is_refused():
    text = yaml.safe_dump({"r.test": {"user": "u" * 4097, "password": "p"}})
    with pytest.raises(pod_policy.PodSpecError, match="longer than 4096"):
        pod_policy.load_registry_logins(text, "auth.yaml")


# -- hostfiles: what is kept of the env files, and their size bound -------------------------
def test_only_the_tenants_own_env_files_are_kept(base):
    """The provider's env files (secrets, root-owned, outside the tenant's tree) are read
    at every render but must never be copied into the hosting's state folder."""
    provider = base.parent / "provider-env"
    provider.mkdir(exist_ok=True)
    (provider / "shop-web.env").write_text("SECRET=provider\n")
    (base / "private" / "shop-web.env").write_text("TENANT=1\n")
    policy = pod_policy.load_policy(shop_policy(base, provider_env_dir=str(provider)))
    result = pod_policy.render_pod(yaml.safe_dump(shop_pod()), policy)
    assert str(provider / "shop-web.env") in result.env_texts  # it was read
    kept = pod_policy.tenant_env_snapshot(policy, result)
    assert kept == {"shop-web.env": "TENANT=1\n"}
    os.unlink(base / "private" / "shop-web.env")


@pytest.mark.parametrize(
    ("size", "ok"), [(MAX_ENV_FILE_BYTES, True), (MAX_ENV_FILE_BYTES + 1, False)]
)
def test_the_env_file_size_bound(base, size, ok):
    line = "A=" + "x" * (size - 3) + "\n"
    assert len(line.encode()) == size
    env = base / "private" / "shop-web.env"
    env.write_text(line)
    try:
        errors, _ = outcome(shop_pod(), pod_policy.load_policy(shop_policy(base)))
    finally:
        env.unlink()
    assert (errors == []) is ok, errors
    if not ok:
        assert any("larger than %d bytes" % MAX_ENV_FILE_BYTES in e for e in errors), errors


# -- fileio: root reading and appending inside a tenant's tree ------------------------------
from ansible_collections.webhosting.pods.plugins.module_utils import fileio  # noqa: E402

TENANT_UID, TENANT_GID, OTHER_UID = 40001, 40001, 40002
# CI runs as root: there a missing root is a failure, not a skip (issue 33)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="chown needs root"
)


@pytest.fixture
def tree(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield tmp_path, fd
    os.close(fd)


@needs_root
def test_append_beneath_creates_the_file_for_the_tenant(tree):
    path, fd = tree
    assert fileio.append_beneath(fd, "log", "one\n", TENANT_UID, TENANT_GID) is True
    st = os.lstat(path / "log")
    assert (st.st_uid, st.st_gid, stat_mode(st)) == (TENANT_UID, TENANT_GID, 0o640)
    assert fileio.append_beneath(fd, "log", b"two\n", TENANT_UID, TENANT_GID) is True
    assert (path / "log").read_text() == "one\ntwo\n"


@needs_root
def test_append_beneath_refuses_a_file_of_another_owner(tree):
    path, fd = tree
    (path / "log").write_text("theirs\n")
    os.chown(path / "log", OTHER_UID, OTHER_UID)
    assert fileio.append_beneath(fd, "log", "x\n", TENANT_UID, TENANT_GID) is False
    assert (path / "log").read_text() == "theirs\n"


@needs_root
def test_append_beneath_refuses_a_hard_link(tree):
    """A tenant's hard link to a file they own elsewhere (root's append would land there)."""
    path, fd = tree
    (path / "elsewhere").write_text("kept\n")
    os.chown(path / "elsewhere", TENANT_UID, TENANT_GID)
    os.link(path / "elsewhere", path / "log")
    assert fileio.append_beneath(fd, "log", "x\n", TENANT_UID, TENANT_GID) is False
    assert (path / "elsewhere").read_text() == "kept\n"


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_append_beneath_never_follows_or_blocks(tree, kind):
    path, fd = tree
    target = path / "target"
    target.write_text("")
    if kind == "symlink":
        (path / "log").symlink_to(target)
    else:
        os.mkfifo(path / "log")
    assert fileio.append_beneath(fd, "log", "x\n", os.getuid(), os.getgid()) is False
    assert target.read_text() == ""


def test_read_beneath_enforces_its_limit(tree):
    path, fd = tree
    (path / "f").write_bytes(b"x" * 11)
    assert fileio.read_beneath(fd, "f", 11) == b"x" * 11
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        fileio.read_beneath(fd, "f", 10)


def test_read_beneath_refuses_a_fifo_without_blocking(tree):
    path, fd = tree
    os.mkfifo(path / "f")
    with pytest.raises(ValueError, match="not a regular file"):
        fileio.read_beneath(fd, "f", 10)


@pytest.mark.parametrize("relative", ["..", "a/../..", "a/..", "../x"])
def test_open_directory_beneath_refuses_dot_dot(tree, relative):
    path, fd = tree
    (path / "a").mkdir()
    with pytest.raises(ValueError, match="'..' is not allowed"):
        fileio.open_directory_beneath(fd, relative)


def test_open_nofollow_never_blocks_on_a_fifo(tmp_path):
    """Without O_NONBLOCK, opening a FIFO for reading waits for a writer: forever."""
    import signal

    def hung(_signum, _frame):
        raise AssertionError("open_nofollow blocked on a FIFO")

    os.mkfifo(tmp_path / "f")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        with fileio.open_nofollow(str(tmp_path / "f")) as fd:
            assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_open_nofollow_directory_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        with fileio.open_nofollow(str(tmp_path / "f"), directory=True):
            pass


def stat_mode(st):
    return st.st_mode & 0o7777


# -- probes: defaults inside the policy's own bounds ----------------------------------------
@pytest.mark.parametrize(
    ("limits", "field", "expected"),
    [
        ({"period_min": 30}, "period", 30),  # the default 10 s would break the policy
        ({"timeout_max": 1}, "timeout", 1),
        ({"failure_threshold_max": 2}, "failure_threshold", 2),
    ],
)
def test_probe_defaults_are_clamped_to_the_policy(base, limits, field, expected):
    policy = pod_policy.load_policy(shop_policy(base, probe_limits=limits))
    pod = patched(shop_pod(), {C0 + ".livenessProbe": {"tcpSocket": {"port": 8080}}})
    result = pod_policy.render_pod(yaml.safe_dump(pod), policy)
    (probes,) = pod_policy.pod_probes(result.pod).values()
    assert probes["liveness"][field] == expected


# -- values: image references by their length caps ------------------------------------------
@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("r.test/" + "a" * 248, True),  # domain/path: 255 characters
        ("r.test/" + "a" * 249, False),
        ("nginx:" + "t" * 128, True),  # a tag: 128 characters
        ("nginx:" + "t" * 129, False),
    ],
)
def test_image_reference_length_caps(image, ok):
    assert (values._parse_image(image) is not None) is ok


def test_a_reference_past_512_characters_is_refused():
    """Each part within its own cap (a path of 255, a tag of 128, a sha512 digest), 520 in
    all."""
    reference = "r.test/" + "a" * 248 + ":" + "t" * 128 + "@sha512:" + "d" * 128
    assert len(reference) == 520
    assert values._parse_image(reference) is None
    assert values._parse_image(reference[: -8 - 128]) is not None  # without the digest


# -- yamlsafe: the node cap holds for a flat list too ---------------------------------------
def test_a_flat_list_past_the_node_cap_is_refused(policy):
    from pod_policy.constants import MAX_NODES

    items = "\n".join("  - x" for _ in range(MAX_NODES + 1))
    text = yaml.safe_dump(shop_pod()) + "extra:\n" + items + "\n"
    errors, _ = outcome(text, policy)
    assert any("more than %d nodes" % MAX_NODES in line for line in errors), errors[:3]
    fits = yaml.safe_dump(shop_pod()) + "extra:\n" + "\n".join(["  - x"] * 100) + "\n"
    errors, _ = outcome(fits, policy)
    assert not any("nodes" in line for line in errors), errors
