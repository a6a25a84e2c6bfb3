"""Helpers shared by the policy engine, CLI and module tests."""

import copy
import os
import re
import stat
from pathlib import Path

import pod_policy
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
USERPOD = ROOT / "bin" / "userpod"
MODULE = ROOT / "plugins" / "modules" / "pod_spec.py"
COLLECTIONS = ROOT / ".collections"  # holds ansible_collections/webhosting/pods (conftest)

# The provider's example from the issue, verbatim.
PROVIDER_BASE = "/srv/hostings/mycontainertest"
PROVIDER_SYSTEM = """\
name: 'mycontainertest'
volumes_base_dir: '/srv/hostings/mycontainertest'
volumes_containers_gid_share: true
container_env_dir: '/srv/hostings/mycontainertest'
tmp_dir: '/srv/hostings/mycontainertest/tmp'
socket_ports:
  8080:
    dir: /srv/hostings/mycontainertest/tmp/run
exposed_ports: []
pidfile: '/srv/hostings/mycontainertest/pod.pid'
"""
PROVIDER_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: mycontainertest
spec:
  containers:
  - env:
    - name: ADDR
      value: 127.0.0.1:8080
    image: registry.git.autistici.org/ai3/docker/static-content:latest
    name: mywebserver
    volumeMounts:
    - mountPath: /var/www
      name: data-app
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
    ports:
    - containerPort: 8080
      hostPort: 8080
      protocol: TCP
  volumes:
  - hostPath:
      path: /data/app
      type: Directory
    name: data-app
"""
PROVIDER_WARNINGS = [
    "spec.containers[0].ports[0].hostPort: 8080/tcp is not in the policy's exposed_ports; removed",
    "spec.containers[0].securityContext.runAsGroup: 1000 replaced by 0; the policy shares the "
    "hosting's group with containers that mount storage",
]


def make_provider_hosting(base):
    """The provider's hosting tree (data/app, tmp/run) under ``base``; returns the policy
    text with ``base`` in place of /srv/hostings/mycontainertest."""
    base = Path(base)
    (base / "data" / "app").mkdir(parents=True, exist_ok=True)
    (base / "tmp" / "run").mkdir(parents=True, exist_ok=True)
    return PROVIDER_SYSTEM.replace(PROVIDER_BASE, str(base))


def make_hosting(base):
    """A hosting tree with the traps the rules must catch:

    data/www, data/app (directories), data/file (a file), data/link -> /etc (symlink out),
    data/up -> ../.. (relative symlink out), data/inlink -> www (symlink inside),
    private/ (the env dir), tmp/run (socket dir)."""
    base = Path(base)
    for sub in ("data/www/html", "data/app", "private", "tmp/run"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "data" / "file").write_text("not a directory\n")
    for name, target in (("link", "/etc"), ("up", "../.."), ("inlink", "www")):
        if not (base / "data" / name).is_symlink():
            os.symlink(target, base / "data" / name)
    return base


def shop_policy(base, **changes):
    """The policy the rule tests use (a plain dict, as Ansible would pass it)."""
    base = str(base)
    policy = {
        "name": "shop",
        "volumes_base_dir": base,
        "volumes_containers_gid_share": False,
        "container_env_dir": base + "/private",
        "tmp_dir": base + "/tmp",
        "socket_ports": {8080: {"dir": base + "/tmp/run"}},
        "exposed_ports": ["8443/tcp"],
        "pidfile": base + "/pod.pid",
        "default_run_as_user": 1000,
        "default_run_as_group": 1000,
    }
    for key, value in changes.items():
        if value is DELETE:
            policy.pop(key, None)
        else:
            policy[key] = value
    return policy


def shop_pod():
    """A valid pod for shop_policy that renders without any warning."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "shop"},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 8080}],
                    "volumeMounts": [
                        {"name": "www", "mountPath": "/var/www"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "www", "hostPath": {"path": "/data/www", "type": "Directory"}},
                {"name": "tmp", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }


class _Delete:
    def __repr__(self):
        return "DELETE"


DELETE = _Delete()
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _tokens(path):
    return [int(index) if index else name for name, index in _TOKEN.findall(path)]


def patched(document, changes):
    """A deep copy of ``document`` with ``changes`` ({"spec.containers[0].image": value})
    applied in order; DELETE removes the key.  Intermediate mappings and lists are created,
    and replaced when they have the wrong type."""
    document = copy.deepcopy(document)
    for path, value in changes.items():
        tokens = _tokens(path)
        holder, slot = None, None
        node = document
        for token in tokens:
            wanted = list if isinstance(token, int) else dict
            if not isinstance(node, wanted):
                node = wanted()
                if holder is None:
                    document = node
                else:
                    holder[slot] = node
            if isinstance(token, int):
                while len(node) <= token:
                    node.append(None)
            elif token not in node:
                node[token] = None
            holder, slot = node, token
            node = node[token]
        if value is DELETE:
            del holder[slot]
        else:
            holder[slot] = copy.deepcopy(value)
    return document


def to_yaml(document):
    return yaml.safe_dump(document, sort_keys=False)


def outcome(document, policy, strict=False):
    """(errors, warnings) of rendering ``document`` (a dict or YAML text)."""
    text = document if isinstance(document, (str, bytes)) else to_yaml(document)
    try:
        result = pod_policy.render_pod(text, policy, strict=strict)
    except pod_policy.PodSpecError as exc:
        return exc.errors, exc.warnings
    return [], result.warnings


# The rule tables (test_pod_policy_rules_*.py): field paths and the rule of names.
C0 = "spec.containers[0]"
SC = C0 + ".securityContext"
NAME_RULE = (
    "is not a valid name (lowercase letters, digits and '-', starting and ending with a letter "
    "or digit, at most 63 characters)"
)


def rule_table(table):
    """Parametrize a test over rows of (id, changes to shop_pod(), changes to shop_policy(),
    the exact lines expected)."""
    return pytest.mark.parametrize(
        "pod_changes, policy_changes, expected",
        [case[1:] for case in table],
        ids=[case[0] for case in table],
    )


def assert_safe(pod, policy):
    """Every guarantee the engine gives about a rendered pod."""
    policy = pod_policy.load_policy(policy)
    base = policy["volumes_base_dir"]
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == policy["name"]
    assert set(pod["metadata"]) <= {"name", "labels", "annotations"}
    for key in pod["metadata"].get("labels", {}):
        assert not key.startswith(("io.podman.", "io.containers."))
    # the in-memory volumes, the only annotation: claim=bytes, claims of this pod only
    annotations = pod["metadata"].get("annotations", {})
    assert set(annotations) <= {pod_policy.MEMORY_VOLUMES_ANNOTATION}
    memory = {}
    for item in filter(None, annotations.get(pod_policy.MEMORY_VOLUMES_ANNOTATION, "").split(",")):
        claim, size = item.split("=")
        assert claim.startswith(policy["name"] + "-memory-") and int(size) > 0
        memory[claim] = int(size)
    limit = policy["resources"].get("memory")
    if limit is not None:
        assert sum(memory.values()) <= pod_policy.memory_bytes(limit)
    spec = pod["spec"]
    assert set(spec) <= {"hostname", "restartPolicy", "containers", "volumes"}
    assert spec["restartPolicy"] in ("Always", "OnFailure", "Never")
    assert 1 <= len(spec["containers"]) <= policy["max_containers"]
    volumes = {}
    for volume in spec.get("volumes", []):
        assert set(volume) in ({"name", "hostPath"}, {"name", "persistentVolumeClaim"})
        volumes[volume["name"]] = volume
        if "hostPath" in volume:
            assert volume["hostPath"]["type"] == "Directory"
            path = volume["hostPath"]["path"]
            assert os.path.isabs(path) and os.path.normpath(path) == path
            assert os.path.commonpath([base, path]) == base
            current = base
            for part in os.path.relpath(path, base).split(os.sep):
                if part == ".":
                    continue
                assert part != ".."
                current = os.path.join(current, part)
                assert stat.S_ISDIR(os.lstat(current).st_mode), current
        else:  # an in-memory emptyDir: a tmpfs volume of the annotation's size
            assert set(volume["persistentVolumeClaim"]) == {"claimName"}
            assert volume["persistentVolumeClaim"]["claimName"] in memory
    exposed = {
        (int(entry.split("/")[0]), entry.split("/")[1].upper()) for entry in policy["exposed_ports"]
    }
    allowed_keys = {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "workingDir",
        "env",
        "ports",
        "volumeMounts",
        "resources",
        "securityContext",
    }
    for container in spec["containers"]:
        assert set(container) <= allowed_keys
        context = container["securityContext"]
        overrides = policy["containers"].get(container["name"], {})
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["privileged"] is False
        assert context["runAsNonRoot"] is True
        assert isinstance(context["runAsUser"], int) and context["runAsUser"] >= 1
        assert isinstance(context["runAsGroup"], int)
        assert context["runAsGroup"] >= 1 or (
            policy["volumes_containers_gid_share"]
            and context["runAsGroup"] == policy["volumes_containers_gid"]
        )
        if overrides.get("read_only_root_filesystem", True):
            assert context["readOnlyRootFilesystem"] is True
        assert set(context) == {
            "allowPrivilegeEscalation",
            "capabilities",
            "privileged",
            "readOnlyRootFilesystem",
            "runAsNonRoot",
            "runAsUser",
            "runAsGroup",
        }
        for port in container.get("ports", []):
            assert set(port) <= {"containerPort", "protocol", "name", "hostPort", "hostIP"}
            # only published ports are rendered (podman 4.3 publishes any containerPort)
            assert (port["hostPort"], port["protocol"]) in exposed
            assert "hostIP" not in port or "hostPort" in port
        destinations = set()
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes
            assert set(mount) <= {"name", "mountPath", "readOnly"}
            destination = mount["mountPath"]
            assert destination == _posix_normal(destination) and destination != "/"
            assert destination not in destinations  # each destination once, however spelt
            destinations.add(destination)
            if _under_kernel_paths(destination):
                # an in-memory emptyDir, rendered as the runner's tmpfs volume (a claim)
                volume = volumes[mount["name"]]
                assert destination == "/dev/shm"
                assert "persistentVolumeClaim" in volume
        if "workingDir" in container:
            directory = container["workingDir"]
            assert directory == _posix_normal(directory)
            assert not _under_kernel_paths(directory) or _under(directory, "/dev/shm")
        digest = container["image"].partition("@")[2]
        if digest:
            algorithm, _, encoded = digest.partition(":")
            assert re.fullmatch("[0-9a-f]{%d}" % {"sha256": 64, "sha512": 128}[algorithm], encoded)
        if policy["resources"]:
            assert container["resources"] == {"limits": policy["resources"]}
        else:
            assert "resources" not in container
    text = pod_policy.dump_pod(pod)
    assert yaml.safe_load(text) == pod
    for event in yaml.parse(text):  # every string quoted: no YAML 1.1 or 1.2 reader re-types it
        if isinstance(event, yaml.ScalarEvent) and not event.style:
            assert re.fullmatch("[A-Za-z][A-Za-z0-9]*|-?[0-9]+", event.value), event.value
            assert event.value.lower() not in ("y", "n", "yes", "no", "on", "off", "null")


def _posix_normal(path):
    """``path`` normalised lexically, POSIX rules, without os.path (which keeps a leading //)."""
    parts = []
    for part in path.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def _under(path, root):
    return path == root or path.startswith(root + "/")


def _under_kernel_paths(path):
    return any(_under(path, root) for root in ("/proc", "/sys", "/dev"))


def run_module_file(name, tmp_path, **args):
    """Run plugins/modules/NAME.py for real, as Ansible runs a new-style module on the
    managed host (``python NAME.py args.json``, the collection importable); its JSON."""
    import json
    import os
    import subprocess
    import sys

    args_file = tmp_path / f"{name}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    completed = subprocess.run(
        [sys.executable, str(ROOT / "plugins" / "modules" / f"{name}.py"), str(args_file)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
        timeout=60,
        check=False,
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    return json.loads(completed.stdout)
