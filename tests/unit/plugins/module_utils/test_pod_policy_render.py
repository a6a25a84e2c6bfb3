"""What the engine renders: the provider's example end to end, the hardening, the policy's
extensions, host paths on a real file system and env files."""

import copy
import os
import stat

import pod_policy
import pytest
import yaml
from pod_policy import hostfiles
from pod_policy.dump import _PyDumper
from podspec_helpers import (
    DELETE,
    PROVIDER_POD,
    PROVIDER_WARNINGS,
    assert_safe,
    make_hosting,
    make_provider_hosting,
    outcome,
    patched,
    shop_pod,
    shop_policy,
    to_yaml,
)

C0 = "spec.containers[0]"
SC = C0 + ".securityContext"
HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


@pytest.fixture
def base(tmp_path):
    return make_hosting(tmp_path / "shop")


def render(pod, policy, **kwargs):
    text = pod if isinstance(pod, str) else to_yaml(pod)
    return pod_policy.render_pod(text, policy, **kwargs)


# ---------------------------------------------------------------------------------------------
# The provider's example
# ---------------------------------------------------------------------------------------------
PROVIDER_RENDERED = """\
apiVersion: "v1"
kind: "Pod"
metadata:
  name: "mycontainertest"
spec:
  hostname: "mycontainertest"
  restartPolicy: "Always"
  containers:
  - name: "mywebserver"
    image: "registry.git.autistici.org/ai3/docker/static-content:latest"
    env:
    - name: "ADDR"
      value: "127.0.0.1:8080"
    volumeMounts:
    - name: "data-app"
      mountPath: "/var/www"
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop:
        - "ALL"
      privileged: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      runAsUser: 1000
      runAsGroup: 0
  volumes:
  - name: "data-app"
    hostPath:
      path: "{base}/data/app"
      type: "Directory"
"""


def test_provider_example_end_to_end(tmp_path):
    base = tmp_path / "mycontainertest"
    policy = pod_policy.load_policy(make_provider_hosting(base))
    result = pod_policy.render_pod(PROVIDER_POD, policy)
    assert result.warnings == PROVIDER_WARNINGS
    assert result.env_files == []
    assert pod_policy.dump_pod(result.pod) == PROVIDER_RENDERED.format(base=base)
    assert_safe(result.pod, policy)


def test_provider_example_with_its_env_file(tmp_path):
    base = tmp_path / "mycontainertest"
    policy = make_provider_hosting(base)
    env_file = base / "mycontainertest-mywebserver.env"
    env_file.write_text("# secrets\nDB_PASSWORD=s3cret=x\n\nADDR=0.0.0.0:8080\n")
    result = pod_policy.render_pod(PROVIDER_POD, policy)
    assert result.pod["spec"]["containers"][0]["env"] == [
        {"name": "ADDR", "value": "0.0.0.0:8080"},
        {"name": "DB_PASSWORD", "value": "s3cret=x"},
    ]
    assert result.env_files == [str(env_file)]
    assert (
        result.warnings
        == ["spec.containers[0].env[0].value: replaced by %s:4" % env_file] + PROVIDER_WARNINGS
    )


def test_the_providers_env_file_wins_over_the_tenants(tmp_path):
    base = tmp_path / "mycontainertest"
    provider_dir = tmp_path / "provider-env"
    provider_dir.mkdir()
    policy = make_provider_hosting(base).replace(
        "container_env_dir:", "provider_env_dir: '%s'\ncontainer_env_dir:" % provider_dir, 1
    )
    tenant = base / "mycontainertest-mywebserver.env"
    tenant.write_text("MODE=tenant\nDB_PASSWORD=guess\n")
    provider = provider_dir / "mycontainertest-mywebserver.env"
    provider.write_text("DB_PASSWORD=s3cret\n")
    result = pod_policy.render_pod(PROVIDER_POD, policy)
    env = {e["name"]: e["value"] for e in result.pod["spec"]["containers"][0]["env"]}
    assert env["MODE"] == "tenant" and env["DB_PASSWORD"] == "s3cret"
    assert result.env_files == [str(tenant), str(provider)]
    told = [w for w in result.warnings if "DB_PASSWORD" in w]
    assert told == ["%s:2: DB_PASSWORD is set by your provider; their value is used" % tenant]
    assert not any("s3cret" in w or "guess" in w for w in result.warnings)
    # a broken tenant file is an error naming the file and the line
    tenant.write_text("MODE=tenant\nnot a setting\n")
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.render_pod(PROVIDER_POD, policy)
    assert any(line.startswith("%s:2:" % tenant) for line in caught.value.errors)


def test_provider_example_strict_fails_on_its_warnings(tmp_path):
    policy = make_provider_hosting(tmp_path / "mycontainertest")
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.render_pod(PROVIDER_POD, policy, strict=True)
    assert caught.value.errors == PROVIDER_WARNINGS


def test_provider_example_without_its_data_directory(tmp_path):
    base = tmp_path / "mycontainertest"
    policy = make_provider_hosting(base)
    (base / "data" / "app").rmdir()
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.render_pod(PROVIDER_POD, policy)
    assert caught.value.errors == [
        "spec.volumes[0].hostPath.path: /data/app does not exist in the hosting"
    ]
    assert caught.value.warnings == PROVIDER_WARNINGS[:1]


# ---------------------------------------------------------------------------------------------
# Hardening and defaults
# ---------------------------------------------------------------------------------------------
def test_hardening_and_defaults(base):
    result = render(shop_pod(), shop_policy(base))
    spec = result.pod["spec"]
    assert spec["hostname"] == "shop"
    assert spec["restartPolicy"] == "Always"
    container = spec["containers"][0]
    assert container["image"] == "docker.io/library/nginx:1.27"
    assert container["securityContext"] == dict(HARDENED, runAsUser=1000, runAsGroup=1000)
    # Unpublished ports are not rendered (podman 4.3 would publish them on the host).
    assert "ports" not in container
    assert spec["volumes"] == [
        {"name": "www", "hostPath": {"path": str(base / "data" / "www"), "type": "Directory"}},
        {"name": "tmp", "persistentVolumeClaim": {"claimName": "shop-memory-tmp"}},
    ]
    # an in-memory emptyDir: a tmpfs volume the runner makes, of the default size
    assert pod_policy.memory_volumes(result.pod) == [("shop-memory-tmp", 64 * 1024 * 1024)]
    assert_safe(result.pod, shop_policy(base))


def test_tenant_values_that_agree_with_the_hardening_are_accepted(base):
    pod = patched(
        shop_pod(),
        {
            SC: {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["NET_RAW", "MKNOD"], "add": []},
                "runAsUser": 2000,
                "runAsGroup": 2001,
            },
            "spec.hostNetwork": False,
            "spec.hostPID": False,
            "spec.hostIPC": False,
        },
    )
    result = render(pod, shop_policy(base))
    assert result.warnings == []
    assert "hostNetwork" not in result.pod["spec"]
    context = result.pod["spec"]["containers"][0]["securityContext"]
    assert context == dict(HARDENED, runAsUser=2000, runAsGroup=2001)


def test_tenant_values_are_kept(base):
    pod = patched(
        shop_pod(),
        {
            C0 + ".command": ["/bin/sh", "-c", "echo one\necho two"],
            C0 + ".args": ["--flag"],
            C0 + ".workingDir": "/srv/app",
            C0 + ".imagePullPolicy": "IfNotPresent",
            C0 + ".env": [{"name": "CERT", "value": "-----BEGIN-----\nabc\n"}, {"name": "E"}],
            C0 + ".volumeMounts[0].readOnly": True,
            C0 + ".ports[0].name": "http",
            "spec.hostname": "www",
            "spec.restartPolicy": "OnFailure",
            "metadata.labels": {"app.kubernetes.io/name": "shop", "tier": ""},
            "spec.volumes[1].emptyDir.sizeLimit": "64Mi",
        },
    )
    result = render(pod, shop_policy(base))
    assert result.warnings == []
    pod = result.pod
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c", "echo one\necho two"]
    assert container["args"] == ["--flag"]
    assert container["workingDir"] == "/srv/app"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["env"] == [
        {"name": "CERT", "value": "-----BEGIN-----\nabc\n"},
        {"name": "E", "value": ""},
    ]
    assert container["volumeMounts"][0] == {
        "name": "www",
        "mountPath": "/var/www",
        "readOnly": True,
    }
    assert "ports" not in container  # the socket port is reached inside the pod
    assert pod["spec"]["hostname"] == "www"
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": "shop", "tier": ""}
    assert pod["spec"]["volumes"][1] == {
        "name": "tmp",
        "persistentVolumeClaim": {"claimName": "shop-memory-tmp"},
    }
    assert pod_policy.memory_volumes(pod) == [("shop-memory-tmp", 64 * 1024 * 1024)]
    assert yaml.safe_load(pod_policy.dump_pod(pod)) == pod


@pytest.mark.parametrize(
    "image, rendered",
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("library/nginx", "docker.io/library/nginx:latest"),
        ("bitnami/nginx:1", "docker.io/bitnami/nginx:1"),
        ("quay.io/shop/web", "quay.io/shop/web:latest"),
        ("localhost/web:dev", "localhost/web:dev"),
        ("registry.example:5000/a/b/c:v1.2_3", "registry.example:5000/a/b/c:v1.2_3"),
        ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx@sha256:" + "a" * 64),
        ("nginx:1@sha256:" + "b" * 64, "docker.io/library/nginx:1@sha256:" + "b" * 64),
    ],
)
def test_image_references_are_normalised(base, image, rendered):
    result = render(patched(shop_pod(), {C0 + ".image": image}), shop_policy(base))
    assert result.pod["spec"]["containers"][0]["image"] == rendered


@pytest.mark.parametrize(
    "image, allowed",
    [
        ("nginx", ["docker.io"]),
        ("nginx", ["docker.io/library"]),
        ("quay.io/shop/web", ["quay.io/shop"]),
        ("quay.io/shop/web", ["quay.io"]),
        ("Registry.Example/x", ["registry.example"]),
    ],
)
def test_allowed_registries(base, image, allowed):
    policy = shop_policy(base, allowed_registries=allowed)
    assert outcome(patched(shop_pod(), {C0 + ".image": image}), policy) == ([], [])


def test_exposed_host_port_is_kept(base):
    pod = patched(
        shop_pod(), {C0 + ".ports[1]": {"containerPort": 443, "hostPort": 8443, "hostIP": "::1"}}
    )
    result = render(pod, shop_policy(base))
    assert result.warnings == []
    assert result.pod["spec"]["containers"][0]["ports"] == [
        {
            "containerPort": 443,
            "protocol": "TCP",
            "hostPort": 8443,
            "hostIP": "::1",
        }
    ]


def test_pod_level_security_context_is_the_containers_default(base):
    pod = patched(
        shop_pod(),
        {
            "spec.securityContext": {"runAsUser": 3000, "runAsGroup": 3001, "runAsNonRoot": True},
            "spec.containers[1]": {
                "name": "side",
                "image": "busybox",
                "securityContext": {"runAsUser": 4000},
            },
        },
    )
    result = render(pod, shop_policy(base))
    first, second = result.pod["spec"]["containers"]
    assert (first["securityContext"]["runAsUser"], first["securityContext"]["runAsGroup"]) == (
        3000,
        3001,
    )
    assert (second["securityContext"]["runAsUser"], second["securityContext"]["runAsGroup"]) == (
        4000,
        3001,
    )
    assert "securityContext" not in result.pod["spec"]


def test_run_as_group_defaults_to_the_user_without_a_policy_default(base):
    policy = shop_policy(base, default_run_as_group=DELETE)
    result = render(patched(shop_pod(), {SC + ".runAsUser": 1234}), policy)
    assert result.pod["spec"]["containers"][0]["securityContext"]["runAsGroup"] == 1234


def test_gid_share_applies_only_to_containers_that_mount_storage(base):
    policy = shop_policy(base, volumes_containers_gid_share=True)
    pod = patched(
        shop_pod(),
        {
            "spec.containers[1]": {
                "name": "cache",
                "image": "redis",
                "volumeMounts": [{"name": "tmp", "mountPath": "/data"}],
            }
        },
    )
    result = render(pod, policy)
    web, cache = result.pod["spec"]["containers"]
    assert web["securityContext"]["runAsGroup"] == 0
    assert cache["securityContext"]["runAsGroup"] == 1000
    assert result.warnings == []
    assert_safe(result.pod, policy)


def test_policy_resources_are_every_container_limit(base):
    policy = shop_policy(base, resources={"cpu": "500m", "memory": "256Mi"})
    pod = patched(shop_pod(), {C0 + ".resources": {"limits": {"cpu": "8", "memory": "64Gi"}}})
    result = render(pod, policy)
    assert result.pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"}
    }
    assert result.warnings == [C0 + ".resources: ignored"]


def test_read_only_root_override(base):
    policy = shop_policy(base, containers={"web": {"read_only_root_filesystem": False}})
    result = render(shop_pod(), policy)
    assert result.pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    tenant_false = render(patched(shop_pod(), {SC + ".readOnlyRootFilesystem": False}), policy)
    assert tenant_false.warnings == []
    stricter = render(patched(shop_pod(), {SC + ".readOnlyRootFilesystem": True}), policy)
    assert stricter.pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"]


def test_systemd_override_adds_tmpfs_mounts(base):
    policy = shop_policy(base, containers={"web": {"systemd": True}})
    result = render(shop_pod(), policy)
    container = result.pod["spec"]["containers"][0]
    assert container["volumeMounts"] == [
        {"name": "www", "mountPath": "/var/www"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "systemd-0-run", "mountPath": "/run"},
        {"name": "systemd-0-lock", "mountPath": "/run/lock"},
    ]
    assert result.pod["spec"]["volumes"][2:] == [
        {
            "name": "systemd-0-run",
            "persistentVolumeClaim": {"claimName": "shop-memory-systemd-0-run"},
        },
        {
            "name": "systemd-0-lock",
            "persistentVolumeClaim": {"claimName": "shop-memory-systemd-0-lock"},
        },
    ]
    assert container["securityContext"] == dict(HARDENED, runAsUser=1000, runAsGroup=1000)
    assert result.warnings == []
    assert_safe(result.pod, policy)


def test_systemd_tmpfs_is_not_added_over_a_tenant_mount_spelt_differently(base):
    policy = shop_policy(base, containers={"web": {"systemd": True}})
    result = render(patched(shop_pod(), {C0 + ".volumeMounts[1].mountPath": "//run/"}), policy)
    assert result.pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "www", "mountPath": "/var/www"},
        {"name": "tmp", "mountPath": "/run"},
        {"name": "systemd-0-lock", "mountPath": "/run/lock"},
        {"name": "systemd-0-tmp", "mountPath": "/tmp"},
    ]


@pytest.mark.parametrize(
    "written, rendered",
    [
        ("/var/www", "/var/www"),
        ("//var//www/", "/var/www"),
        ("/var/./www/.", "/var/www"),
        ("/var/lib/../www", "/var/www"),
        ("/../../var/www", "/var/www"),
        ("/var/www/..", "/var"),
        ("/procfs", "/procfs"),
        ("/srv/proc", "/srv/proc"),
        ("/devices", "/devices"),
        ("/a b/ c", "/a b/ c"),
    ],
)
def test_container_paths_are_rendered_normalised(base, written, rendered):
    pod = patched(
        shop_pod(), {C0 + ".volumeMounts[0].mountPath": written, C0 + ".workingDir": written}
    )
    result = render(pod, shop_policy(base))
    container = result.pod["spec"]["containers"][0]
    assert container["volumeMounts"][0]["mountPath"] == rendered
    assert container["workingDir"] == rendered


def test_an_in_memory_empty_dir_may_be_mounted_on_dev_shm(base):
    pod = patched(
        shop_pod(),
        {
            C0 + ".volumeMounts[1].mountPath": "//dev/./shm/",
            C0 + ".workingDir": "/dev/shm/work",
        },
    )
    result = render(pod, shop_policy(base))
    container = result.pod["spec"]["containers"][0]
    assert container["volumeMounts"][1] == {"name": "tmp", "mountPath": "/dev/shm"}
    assert container["workingDir"] == "/dev/shm/work"
    assert result.warnings == []


def test_no_writable_mount_is_added_silently(base):
    pod = patched(shop_pod(), {C0 + ".volumeMounts": [{"name": "www", "mountPath": "/var/www"}]})
    pod = patched(pod, {"spec.volumes": [pod["spec"]["volumes"][0]]})
    result = render(pod, shop_policy(base))
    assert [m["mountPath"] for m in result.pod["spec"]["containers"][0]["volumeMounts"]] == [
        "/var/www"
    ]
    assert len(result.pod["spec"]["volumes"]) == 1


def test_policy_as_text_or_mapping_gives_the_same_pod(base):
    policy = shop_policy(base)
    assert render(shop_pod(), policy).pod == render(shop_pod(), yaml.safe_dump(policy)).pod


def test_render_does_not_change_the_policy_it_is_given(base):
    policy = pod_policy.load_policy(shop_policy(base))
    before = repr(policy)
    render(shop_pod(), policy)
    assert repr(policy) == before


def test_policy_errors_come_from_render_too(base):
    with pytest.raises(pod_policy.PodSpecError) as caught:
        render(shop_pod(), shop_policy(base, network="host"))
    assert caught.value.errors == [
        'policy.network: must be one of default, none, pasta, slirp4netns, got "host"'
    ]


# ---------------------------------------------------------------------------------------------
# dump_pod
# ---------------------------------------------------------------------------------------------
def test_dump_is_deterministic_and_the_same_with_both_emitters(base):
    result = render(
        patched(
            shop_pod(),
            {
                C0 + ".env": [
                    {"name": "A", "value": "yes"},
                    {"name": "B", "value": "2024-01-01"},
                    {"name": "C", "value": "0x10"},
                    {"name": "D", "value": "multi\nline"},
                    {"name": "E", "value": "ünïcödé"},
                    {"name": "F", "value": "x" * 200},
                ]
            },
        ),
        shop_policy(base),
    )
    text = pod_policy.dump_pod(result.pod)
    assert text == pod_policy.dump_pod(result.pod, _PyDumper)
    assert text == pod_policy.dump_pod(copy.deepcopy(result.pod))
    assert yaml.safe_load(text) == result.pod
    assert "&" not in text and "*" not in text
    assert '  value: "yes"\n' in text and '  value: "2024-01-01"\n' in text
    assert '  value: "multi\\nline"\n' in text and '  value: "ünïcödé"\n' in text
    assert '  value: "%s"\n' % ("x" * 200) in text


def test_dump_other_types():
    """Floats and tuples (never in a rendered pod) are still YAML; anything else is a bug."""
    assert pod_policy.dump_pod({"a": 1.5, "b": (1, 2)}) == "a: 1.5\nb:\n- 1\n- 2\n"
    with pytest.raises(TypeError, match="cannot emit set"):
        pod_policy.dump_pod({"a": {1}})


# ---------------------------------------------------------------------------------------------
# Host paths on the file system
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tenant_path, resolved",
    [
        ("/data/www", "data/www"),
        ("data/www", "data/www"),
        ("/data//www/./html/", "data/www/html"),
        ("/", "."),
        ("/data", "data"),
    ],
)
def test_host_paths_resolve_inside_the_hosting(base, tenant_path, resolved):
    pod = patched(shop_pod(), {"spec.volumes[0].hostPath.path": tenant_path})
    result = render(pod, shop_policy(base))
    path = result.pod["spec"]["volumes"][0]["hostPath"]["path"]
    assert path == os.path.normpath(os.path.join(str(base), resolved))


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_a_symlink_at_any_component_is_refused(tmp_path, depth):
    base = make_hosting(tmp_path / "shop")
    parts = ["a", "b", "c", "d"]
    real = base.joinpath(*parts)
    real.mkdir(parents=True)
    # replace component `depth` by a symlink to an identical tree outside the hosting
    outside = tmp_path / "outside"
    outside.joinpath(*parts[depth + 1 :]).mkdir(parents=True, exist_ok=True)
    victim = base.joinpath(*parts[: depth + 1])
    os.rename(victim, tmp_path / ("moved-%d" % depth))
    os.symlink(outside, victim)
    pod = patched(shop_pod(), {"spec.volumes[0].hostPath.path": "/a/b/c/d"})
    errors, _ = outcome(pod, shop_policy(base))
    walked = "/" + "/".join(parts[: depth + 1])
    assert errors == [
        "spec.volumes[0].hostPath.path: /a/b/c/d goes through the symlink %s; symlinks are not "
        "followed" % walked
    ]


def test_a_symlinked_hosting_root_is_the_admins_choice(tmp_path):
    real = make_hosting(tmp_path / "real")
    os.symlink(real, tmp_path / "shop")
    result = render(shop_pod(), shop_policy(tmp_path / "shop"))
    assert result.pod["spec"]["volumes"][0]["hostPath"]["path"] == str(tmp_path / "shop/data/www")


def test_missing_hosting_root(tmp_path):
    errors, _ = outcome(shop_pod(), shop_policy(tmp_path / "nowhere"))
    assert errors == ["spec.volumes[0].hostPath.path: /data/www does not exist in the hosting"]


def denied(target, real):
    """os.lstat/os.open that fail with EACCES for ``target`` (works as root too)."""

    def fake(path, *args, **kwargs):
        if os.fspath(path) == str(target):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    return fake


def test_unreadable_directory(base, monkeypatch):
    monkeypatch.setattr(hostfiles.os, "lstat", denied(base / "data" / "www", os.lstat))
    errors, _ = outcome(shop_pod(), shop_policy(base))
    assert errors == [
        "spec.volumes[0].hostPath.path: /data/www cannot be checked (permission denied at "
        "/data/www)"
    ]


def test_special_files_are_not_directories(base):
    os.mkfifo(base / "data" / "fifo")
    pod = patched(shop_pod(), {"spec.volumes[0].hostPath.path": "/data/fifo"})
    assert outcome(pod, shop_policy(base))[0] == [
        "spec.volumes[0].hostPath.path: /data/fifo is not a directory"
    ]


# ---------------------------------------------------------------------------------------------
# Env files: <container_env_dir>/<pod>-<container>.env
# ---------------------------------------------------------------------------------------------
def env_file(base):
    return base / "private" / "shop-web.env"


def test_env_file_is_merged_and_wins(base):
    env_file(base).write_text(
        "# comment\n\nA=from-file\r\nB = spaced value \nC=\nD=a=b\n   # indented comment\n"
    )
    pod = patched(
        shop_pod(), {C0 + ".env": [{"name": "A", "value": "tenant"}, {"name": "Z", "value": "z"}]}
    )
    result = render(pod, shop_policy(base))
    assert result.pod["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "from-file"},
        {"name": "Z", "value": "z"},
        {"name": "B", "value": " spaced value "},
        {"name": "C", "value": ""},
        {"name": "D", "value": "a=b"},
    ]
    assert result.warnings == [C0 + ".env[0].value: replaced by %s:3" % env_file(base)]
    assert result.env_files == [str(env_file(base))]


def test_no_env_dir_in_the_policy_means_no_env_file(base):
    env_file(base).write_text("A=1\n")
    result = render(shop_pod(), shop_policy(base, container_env_dir=DELETE))
    assert "env" not in result.pod["spec"]["containers"][0]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"A=1\nno equals sign\n", ":2: expected KEY=VALUE"),
        (b"1BAD=x\n", ':1: "1BAD" is not a valid variable name'),
        (b"export A=1\n", ':1: "export A" is not a valid variable name'),
        (b"A=1\nB=\x00\n", ":2: contains a NUL character"),
        (b"A=x\rB=y\n", ":1: contains a carriage return"),
        (b"A=\xff\n", ": not valid UTF-8 text (byte 2)"),
        (b"A=" + b"x" * 70000 + b"\n", ": larger than 65536 bytes"),
    ],
    ids=["no-equals", "bad-name", "export", "nul", "carriage-return", "binary", "too-large"],
)
def test_env_file_errors_name_the_file_and_line(base, content, problem):
    env_file(base).write_bytes(content)
    errors, _ = outcome(shop_pod(), shop_policy(base))
    assert errors == [str(env_file(base)) + problem]


def test_env_file_symlink_is_refused(base):
    secret = base.parent / "secret"
    secret.write_text("ROOT_PASSWORD=x\n")
    os.symlink(secret, env_file(base))
    errors, _ = outcome(shop_pod(), shop_policy(base))
    assert errors == [str(env_file(base)) + ": is a symlink; env files must be regular files"]


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_env_file_must_be_a_regular_file(base, kind):
    if kind == "directory":
        env_file(base).mkdir()
    else:
        os.mkfifo(env_file(base))
    errors, _ = outcome(shop_pod(), shop_policy(base))
    assert errors == [str(env_file(base)) + ": is not a regular file"]


def test_env_file_unreadable(base, monkeypatch):
    env_file(base).write_text("A=1\n")
    monkeypatch.setattr(hostfiles.os, "open", denied(env_file(base), os.open))
    errors, _ = outcome(shop_pod(), shop_policy(base))
    assert errors == [str(env_file(base)) + ": cannot be read (Permission denied)"]


def test_env_file_is_read_without_following_links(base, monkeypatch):
    env_file(base).write_text("A=1\n")
    flags_seen = []
    real_open = os.open

    def spy(path, flags, *args):
        flags_seen.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(hostfiles.os, "open", spy)
    render(shop_pod(), shop_policy(base))
    assert flags_seen and all(flags & os.O_NOFOLLOW for flags in flags_seen)
    assert stat.S_ISREG(os.lstat(env_file(base)).st_mode)


@pytest.mark.parametrize(
    "change, error",
    [
        (
            lambda p: p.update(network="host"),
            'policy.network: must be one of default, none, pasta, slirp4netns, got "host"',
        ),
        (
            lambda p: p["socket_ports"][8080].update(dir="relative"),
            'policy.socket_ports[8080].dir: "relative" must be an absolute path',
        ),
        (
            lambda p: p.update(default_run_as_user=0),
            "policy.default_run_as_user: must be an integer between 1 and 4294967294, got 0 "
            "(0 is root)",
        ),
    ],
    ids=["top-level", "nested", "root-default"],
)
def test_a_normalised_policy_changed_later_is_validated_again(base, change, error):
    policy = pod_policy.load_policy(shop_policy(base))
    render(shop_pod(), policy)  # the normalised policy is reused as is
    change(policy)
    with pytest.raises(pod_policy.PodSpecError) as caught:
        render(shop_pod(), policy)
    assert caught.value.errors == [error]


@pytest.mark.parametrize(
    ("sizes", "memory", "error"),
    [
        (["16Mi", "16Mi"], "64Mi", None),
        (["32Mi", None], "64Mi", "the in-memory volumes take 100663296 bytes in all"),
        ([None], "32Mi", "more than the pod's memory limit of 32Mi (policy resources.memory)"),
        (["1Gi"], None, None),
    ],
)
def test_in_memory_volumes_have_a_size_that_counts_against_the_memory_limit(
    base, sizes, memory, error
):
    """Every in-memory emptyDir gets a size (its sizeLimit, else the policy's
    default_memory_volume_size, 64Mi) and together they must fit the pod's memory limit."""
    volumes = [
        {
            "name": "m%d" % i,
            "emptyDir": dict({"medium": "Memory"}, **({"sizeLimit": s} if s else {})),
        }
        for i, s in enumerate(sizes)
    ]
    mounts = [{"name": v["name"], "mountPath": "/m%d" % i} for i, v in enumerate(volumes)]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1",
                    "ports": [{"containerPort": 8080}],
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }
    policy = shop_policy(base, **({"resources": {"memory": memory}} if memory else {}))
    if error:
        with pytest.raises(pod_policy.PodSpecError) as caught:
            pod_policy.render_pod(yaml.safe_dump(pod), policy)
        assert any(e.startswith("spec.volumes: ") and error in e for e in caught.value.errors)
        return
    result = pod_policy.render_pod(yaml.safe_dump(pod), policy)
    sizes_bytes = [pod_policy.memory_bytes(s or "64Mi") for s in sizes]
    assert pod_policy.memory_volumes(result.pod) == [
        ("shop-memory-m%d" % i, size) for i, size in enumerate(sizes_bytes)
    ]
    assert_safe(result.pod, policy)


def test_kept_env_changes_plans_only_what_differs(tmp_path):
    (tmp_path / "shop-web.env").write_text("A=1\n")
    (tmp_path / "shop-db.env").write_text("B=old\n")
    (tmp_path / "shop-gone.env").write_text("C=1\n")
    (tmp_path / "pod.yaml").write_text("not an env file\n")
    (tmp_path / "shop-link.env").symlink_to(tmp_path / "shop-web.env")
    texts = {"shop-web.env": "A=1\n", "shop-db.env": "B=new\n", "shop-link.env": "A=1\n"}
    stale, changed = pod_policy.kept_env_changes(str(tmp_path), texts)
    assert stale == ["shop-gone.env"]
    # a link is never read through: rewritten as a file
    assert changed == {"shop-db.env": "B=new\n", "shop-link.env": "A=1\n"}
