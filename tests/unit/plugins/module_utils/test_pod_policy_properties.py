"""Property tests: whatever a tenant writes, the engine either refuses it with
PodSpecError (one printable line per error) or renders a safe pod (no root, no host path
outside the hosting or through a symlink, no privilege, no host port outside exposed_ports,
no host namespaces) - and never raises anything else."""

import pod_policy
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from pod_policy.dump import _PyDumper
from podspec_helpers import (
    _posix_normal,
    assert_safe,
    make_hosting,
    patched,
    shop_pod,
    shop_policy,
)

C0 = "spec.containers[0]"
SC = C0 + ".securityContext"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


@pytest.fixture(scope="module")
def policies(base):
    return [
        pod_policy.load_policy(shop_policy(base)),
        pod_policy.load_policy(
            shop_policy(
                base,
                volumes_containers_gid_share=True,
                default_run_as_user=None,
                exposed_ports=["8443/tcp", "53/udp"],
                containers={"web": {"read_only_root_filesystem": False, "systemd": True}},
                resources={"cpu": "1", "memory": "1Gi"},
                allowed_registries=["docker.io", "quay.io/shop"],
                max_containers=3,
            )
        ),
        pod_policy.load_policy(
            shop_policy(base, socket_ports={}, network="none", exposed_ports=[])
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------
NASTY_STRINGS = [
    "0",
    "root",
    "",
    " ",
    "..",
    "../..",
    "/",
    "/etc",
    "/data/link",
    "/data/up/etc",
    "/data/inlink",
    "/data/file",
    "/data/www",
    "data/../../..",
    "ALL",
    "SYS_ADMIN",
    "CAP_SYS_ADMIN",
    "Directory",
    "DirectoryOrCreate",
    "Memory",
    "TCP",
    "UDP",
    "spc_t",
    "unconfined",
    "host",
    "true",
    "yes",
    "nginx",
    "nginx:latest",
    "quay.io/evil/x",
    "a\x00b",
    "a\nb",
    "\u2028",
    "\x1b[0m",
    "x" * 300,
    "8080",
    "/var/www",
    "web",
    "www",
    "tmp",
    "systemd-0-run",
    "$(id)",
    "`id`",
    "; rm -rf /",
    "{{ lookup('pipe','id') }}",
    # what go-yaml (YAML 1.1) or a YAML 1.2 reader would not read as this string
    "y",
    "N",
    "off",
    "On",
    "0o17",
    "017",
    "08",
    "1:30",
    "1_000",
    "1e3",
    ".inf",
    "~",
    "null",
    "2001-12-14",
    " x ",
    "# x",
    "a: b",
    "\u2028\x85\ufeff",
    "\U0001f600",
    # container paths that are, or lie under, what a pod may not mount over or work in
    "/proc",
    "//proc/",
    "/proc/../proc",
    "/sys/fs/cgroup",
    "/dev/../dev/shm",
    "/dev/shm",
    "/dev/shm/x",
    "/./",
    "//",
    "/var/..",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from([0, 1, -1, 1000, 8080, 8443, 53, 65535, 65536, 2**32]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=8)), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
host_paths = st.lists(
    st.sampled_from(
        [
            "..",
            ".",
            "",
            "data",
            "www",
            "html",
            "link",
            "up",
            "inlink",
            "file",
            "etc",
            "app",
            "nope",
            "a b",
        ]
    ),
    max_size=6,
).map(lambda parts: "/".join(parts)) | st.sampled_from(NASTY_STRINGS)
security_contexts = st.dictionaries(
    st.sampled_from(
        [
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "privileged",
            "allowPrivilegeEscalation",
            "readOnlyRootFilesystem",
            "capabilities",
            "seLinuxOptions",
            "procMount",
            "seccompProfile",
            "sysctls",
        ]
    ),
    st.one_of(
        st.sampled_from([0, 1, 1000, True, False, None, "0", "root", -5]),
        st.fixed_dictionaries(
            {},
            optional={
                "add": st.sampled_from([["SYS_ADMIN"], ["ALL"], [], "NET_RAW"]),
                "drop": st.sampled_from([[], ["ALL"], "ALL"]),
            },
        ),
    ),
    max_size=6,
)
ports = st.fixed_dictionaries(
    {"containerPort": st.sampled_from([8080, 80, 443, 53, 0, 65536, "8080", None])},
    optional={
        "hostPort": st.sampled_from([8080, 8443, 53, 22, 80, 0, 65536, "8443"]),
        "hostIP": st.sampled_from(["0.0.0.0", "::", "127.0.0.1", "not-an-ip", 5]),
        "protocol": st.sampled_from(["TCP", "UDP", "tcp", "SCTP", "HTTP", 6]),
    },
)
volumes = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["www", "data", "tmp", "x", "Bad", "systemd-0-run"]),
            "hostPath": st.fixed_dictionaries(
                {"path": host_paths},
                optional={"type": st.sampled_from(["Directory", "File", "", "Socket", None])},
            ),
        },
    ),
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["www", "data", "tmp", "x"]),
            "emptyDir": st.fixed_dictionaries(
                {},
                optional={
                    "medium": st.sampled_from(["Memory", "", "Disk"]),
                    "sizeLimit": st.sampled_from(["64Mi", "1", "lots", 5]),
                },
            ),
        },
    ),
    st.fixed_dictionaries({"name": st.just("cfg"), "configMap": st.just({"name": "x"})}),
    values,
)
mounts = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["www", "data", "tmp", "x", "nope"]),
        "mountPath": st.sampled_from(
            [
                "/var/www",
                "/tmp",
                "/",
                "/run",
                "relative",
                "/a:b",
                "/data",
                "//var/www/",
                "/var/./www",
                "/tmp/x/..",
                "//run",
                "/proc",
                "/proc/../proc",
                "/x/../../sys",
                "//dev",
                "/dev/shm",
                "/dev//shm/",
                "/dev/shm/x",
                "/dev/null",
                "/..",
            ]
        ),
    },
    optional={
        "readOnly": st.sampled_from([True, False, "yes"]),
        "subPath": st.sampled_from(["..", "x"]),
    },
)
containers = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["web", "side", "worker", "Web", "x" * 64]),
        "image": st.sampled_from(
            [
                "nginx",
                "quay.io/shop/w:1",
                "evil.example/x",
                "bad image",
                "",
                "docker.io/library/redis@sha256:" + "c" * 64,
                "nginx@sha256:" + "c" * 63,
                "nginx@sha256:" + "c" * 65,
                "nginx@sha256:" + "C" * 64,
                "nginx@sha256:" + "c" * 128,
                "nginx:1@sha512:" + "d" * 128,
                "nginx@sha512:" + "d" * 64,
                "nginx@md5:" + "e" * 32,
                "nginx@sha384:" + "e" * 96,
            ]
        ),
    },
    optional={
        "securityContext": security_contexts,
        "ports": st.lists(ports, max_size=3),
        "volumeMounts": st.lists(mounts, max_size=3),
        "env": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["A", "B", "1x", "a b"])},
                optional={"value": values, "valueFrom": values},
            ),
            max_size=3,
        ),
        "command": st.lists(st.sampled_from(NASTY_STRINGS), max_size=3) | values,
        "resources": values,
        "workingDir": st.sampled_from(
            ["/app", "app", None, "//app/./x/..", "/proc/self", "/app/../sys", "//dev", "/dev/shm"]
        )
        | st.sampled_from(NASTY_STRINGS),
        "args": st.lists(st.sampled_from(NASTY_STRINGS) | st.text(max_size=10), max_size=4),
        "privileged": st.booleans(),
    },
)
FIELDS = [
    "apiVersion",
    "kind",
    "metadata",
    "metadata.name",
    "metadata.annotations",
    "spec",
    "spec.hostNetwork",
    "spec.hostPID",
    "spec.hostIPC",
    "spec.hostname",
    "spec.restartPolicy",
    "spec.securityContext",
    "spec.securityContext.runAsUser",
    "spec.securityContext.runAsGroup",
    "spec.containers",
    C0,
    C0 + ".name",
    C0 + ".image",
    C0 + ".ports",
    C0 + ".ports[0]",
    C0 + ".ports[0].hostPort",
    C0 + ".ports[0].containerPort",
    C0 + ".env",
    C0 + ".volumeMounts",
    C0 + ".volumeMounts[0].name",
    C0 + ".volumeMounts[0].mountPath",
    C0 + ".volumeMounts[1].mountPath",
    C0 + ".workingDir",
    C0 + ".args",
    C0 + ".env[0].value",
    "metadata.labels",
    SC,
    SC + ".runAsUser",
    SC + ".privileged",
    SC + ".capabilities",
    SC + ".capabilities.add",
    "spec.volumes",
    "spec.volumes[0]",
    "spec.volumes[0].hostPath",
    "spec.volumes[0].hostPath.path",
    "spec.volumes[1].emptyDir",
]
mutations = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(values, security_contexts, containers, volumes, host_paths),
    max_size=5,
)
TARGETS = [
    (SC, security_contexts),
    ("spec.securityContext", security_contexts),
    (SC + ".runAsUser", st.sampled_from([0, 1, 1000, -1, "0", None, True])),
    (SC + ".capabilities.add", st.sampled_from([["SYS_ADMIN"], ["ALL"], [], None, "NET_RAW"])),
    (C0 + ".ports", st.lists(ports, max_size=3)),
    (C0 + ".ports[1]", ports),
    ("spec.containers[1]", containers),
    ("spec.containers[2]", containers),
    ("spec.volumes[0].hostPath.path", host_paths),
    ("spec.volumes[0].hostPath.type", st.sampled_from(["Directory", "File", "", None])),
    ("spec.volumes[2]", volumes),
    (C0 + ".volumeMounts[2]", mounts),
    (C0 + ".volumeMounts[1].mountPath", st.sampled_from(NASTY_STRINGS)),
    (C0 + ".workingDir", st.sampled_from(NASTY_STRINGS)),
    (C0 + ".env", st.lists(st.fixed_dictionaries({"name": st.just("V"), "value": st.text()}))),
    (C0 + ".args", st.lists(st.text() | st.sampled_from(NASTY_STRINGS), max_size=3)),
    (
        "metadata.labels",
        st.dictionaries(
            st.sampled_from(["y", "on", "app", "app.kubernetes.io/name", "08"]),
            st.sampled_from(["y", "off", "08", "1_000", "x", ""]),
        ),
    ),
    ("spec.hostNetwork", st.sampled_from([True, False, "true", 1])),
    ("spec.hostPID", st.sampled_from([True, False])),
    ("spec.hostIPC", st.sampled_from([True, False])),
]
targeted = st.lists(
    st.one_of(*[st.tuples(st.just(path), strategy) for path, strategy in TARGETS]),
    min_size=1,
    max_size=3,
).map(dict)


def base_pod():
    """shop_pod() with a pod-level user, so that policies without a default accept it."""
    return patched(shop_pod(), {"spec.securityContext": {"runAsUser": 1000}})


def check(text, policy):
    try:
        result = pod_policy.render_pod(text, policy)
    except pod_policy.PodSpecError as exc:
        assert exc.errors
        for line in exc.errors + exc.warnings:
            assert isinstance(line, str) and line.isprintable() and ": " in line
        return None
    for line in result.warnings:
        assert line.isprintable() and ": " in line
    assert_safe(result.pod, policy)
    assert pod_policy.dump_pod(result.pod) == pod_policy.dump_pod(result.pod, _PyDumper)
    return result


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
@given(changes=targeted, which=st.integers(0, 2))
def test_targeted_hostile_specs_are_refused_or_safe(policies, changes, which):
    check(yaml.safe_dump(patched(base_pod(), changes)), policies[which])


@given(changes=mutations, which=st.integers(0, 2))
def test_random_mutations_are_refused_or_safe(policies, changes, which):
    check(yaml.safe_dump(patched(base_pod(), changes)), policies[which])


@given(document=values, which=st.integers(0, 2))
def test_arbitrary_documents_are_refused_or_safe(policies, document, which):
    check(yaml.safe_dump(document), policies[which])


@given(spec=st.dictionaries(st.sampled_from(FIELDS[7:] + ["containers", "volumes"]), values))
def test_arbitrary_specs_are_refused_or_safe(policies, spec):
    check(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": spec}), policies[0])


@given(text=st.text(max_size=300))
def test_arbitrary_text_never_crashes(policies, text):
    check(text, policies[1])


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(policies, data):
    check(data, policies[0])


YAML_PIECES = [
    "a",
    ": ",
    "- ",
    "&x ",
    "*x",
    "!!str ",
    "!!python/object:os.system ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "\n",
    "  ",
    "<<: ",
    "? ",
    "'",
    '"',
    "|",
    ">",
    "---\n",
    "#",
    "%YAML 1.1\n",
]


@given(pieces=st.lists(st.sampled_from(YAML_PIECES), max_size=40))
def test_yaml_like_noise_never_crashes(policies, pieces):
    check("".join(pieces), policies[0])


@given(path=host_paths)
def test_host_paths_never_escape(policies, path):
    result = check(
        yaml.safe_dump(patched(base_pod(), {"spec.volumes[0].hostPath.path": path})), policies[0]
    )
    if result is not None:
        assert "link" not in result.pod["spec"]["volumes"][0]["hostPath"]["path"].split("/")[-3:]


# Mostly ordinary absolute paths, so that both outcomes are common.
container_paths = st.builds(
    lambda start, parts: start + "/".join(parts),
    st.sampled_from(["/"] * 8 + ["//", ""]),
    st.lists(
        st.sampled_from(["srv", "www", "srv", "www", "app", "", ".", "..", "proc", "sys", "dev"])
        | st.sampled_from(["shm", "self", "x"]),
        max_size=5,
    ),
)


def _kernel(path):
    return any(path == root or path.startswith(root + "/") for root in ("/proc", "/sys", "/dev"))


@given(www=container_paths, tmp=container_paths, directory=container_paths, which=st.integers(0, 2))
def test_container_paths_are_normalised_and_kept_out_of_the_kernel(
    policies, www, tmp, directory, which
):
    """An oracle: the pod is accepted exactly when each path is absolute, neither mount is on
    /, on /proc, /sys or /dev (the emptyDir "tmp" may be on /dev/shm), the two mounts differ
    once normalised, and the working directory is out of /proc, /sys and /dev (/dev/shm is
    fine); then the rendered paths are the normalised ones."""
    pod = patched(
        base_pod(),
        {
            C0 + ".volumeMounts[0].mountPath": www,
            C0 + ".volumeMounts[1].mountPath": tmp,
            C0 + ".workingDir": directory,
        },
    )
    result = check(yaml.safe_dump(pod), policies[which])
    www_n, tmp_n, directory_n = _posix_normal(www), _posix_normal(tmp), _posix_normal(directory)
    acceptable = (
        all(path.startswith("/") for path in (www, tmp, directory))
        and "/" not in (www_n, tmp_n)
        and not _kernel(www_n)
        and (not _kernel(tmp_n) or tmp_n == "/dev/shm")
        and www_n != tmp_n
        and (not _kernel(directory_n) or (directory_n + "/").startswith("/dev/shm/"))
    )
    event("accepted" if acceptable else "refused")
    assert (result is not None) == acceptable, (www, tmp, directory)
    if result is not None:
        container = result.pod["spec"]["containers"][0]
        assert [m["mountPath"] for m in container["volumeMounts"][:2]] == [www_n, tmp_n]
        assert container["workingDir"] == directory_n


@given(
    source=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "volumes_base_dir",
                "socket_ports",
                "exposed_ports",
                "containers",
                "resources",
                "network",
                "default_run_as_user",
                "allowed_registries",
                "max_containers",
                "volumes_containers_gid_share",
                "tmp_dir",
                "junk",
            ]
        ),
        values,
    )
)
def test_policies_are_refused_or_normalised(source):
    try:
        policy = pod_policy.load_policy(source)
    except pod_policy.PodSpecError as exc:
        assert exc.errors and all(line.startswith("policy") for line in exc.errors)
        return
    assert pod_policy.load_policy(policy) == policy
