# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering: the tenant's Pod checked against the system policy and hardened
(:func:`render_pod`).  The pod level is here, each container's rules in containers.py."""

import re

from .constants import (
    MEMORY_VOLUMES_ANNOTATION,
    PROBES_ANNOTATION,
    RESERVED_LABEL_PREFIXES,
    RESTART_POLICIES,
)
from .containers import _ContainerRenderer
from .hostfiles import _resolve_host_dir
from .messages import PodSpecError, _index, _key, _kind, _Report, _show
from .policy import _normalised
from .probes import annotation as probes_annotation
from .security import _POD_SECURITY_KEYS, _security_context
from .values import (
    _boolean,
    _dns_label,
    _ignore_unknown,
    _mapping,
    _memory,
    _memory_bytes,
    _sequence,
    _text,
)
from .yamlsafe import _load_yaml

_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", re.ASCII)
_LABEL_PREFIX_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII
)


class RenderResult:
    """What :func:`render_pod` returns: ``pod`` (the hardened Pod, plain data), ``warnings``
    (list of ``field.path: message`` lines), ``env_files`` (env files merged in) and
    ``env_texts`` (their text as validated, by path: what :func:`tenant_env_snapshot`
    keeps of the tenant's own)."""

    __slots__ = ("pod", "warnings", "env_files", "env_texts")

    def __init__(self, pod, warnings, env_files=None, env_texts=None):
        self.pod = pod
        self.warnings = warnings
        self.env_files = list(env_files or [])
        self.env_texts = dict(env_texts or {})

    def __repr__(self):
        return "RenderResult(pod=%r, warnings=%r)" % (self.pod, self.warnings)


_TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
_METADATA_KEYS = ("name", "labels")
_SPEC_KEYS = (
    "containers",
    "volumes",
    "hostname",
    "restartPolicy",
    "securityContext",
    "hostNetwork",
    "hostPID",
    "hostIPC",
)


class _Renderer(_ContainerRenderer):
    def __init__(self, policy, rep):
        self.policy = policy
        self.rep = rep
        self.exposed = set()
        for entry in policy["exposed_ports"]:
            port, proto = entry.split("/")
            self.exposed.add((int(port), proto.upper()))
        self.socket_ports = set(policy["socket_ports"])
        # TCP containerPorts declared by the tenant (socket ports must be among them).
        self.declared_tcp = set()
        self.env_files = []
        self.env_texts = {}
        self.memory_volumes = []  # (claim, bytes) of the in-memory emptyDirs, in order
        self.probes = {}  # container name: its probes (pod_policy.probes), for the runner
        self.pod_user_refused = False  # spec.securityContext.runAsUser given but invalid

    # -- top level -------------------------------------------------------------------------
    def render(self, doc):
        rep = self.rep
        if not isinstance(doc, dict):
            rep.error("document", "must be a mapping (a Pod), got %s" % _kind(doc))
            return None
        for key in doc:
            if key not in _TOP_KEYS:
                rep.warn(_key("", key), "ignored")
        if "apiVersion" not in doc:
            rep.error("apiVersion", "required, must be v1")
        elif doc["apiVersion"] != "v1":
            rep.error("apiVersion", "must be v1, got %s" % _show(doc["apiVersion"]))
        if "kind" not in doc:
            rep.error("kind", "required, must be Pod")
        elif doc["kind"] != "Pod":
            rep.error("kind", "must be Pod, got %s" % _show(doc["kind"]))

        metadata = self.metadata(doc.get("metadata"))
        spec = None
        if doc.get("spec") is None:
            rep.error("spec", "required")
        else:
            spec = _mapping(rep, "spec", doc["spec"])
        rendered_spec = self.spec(spec) if spec is not None else None
        if rep.errors:
            return None
        annotations = {}
        if self.memory_volumes:
            annotations[MEMORY_VOLUMES_ANNOTATION] = ",".join(
                "%s=%d" % (claim, size) for claim, size in self.memory_volumes
            )
        if self.probes:
            annotations[PROBES_ANNOTATION] = probes_annotation(self.probes)
        if annotations:
            metadata["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": rendered_spec}

    def metadata(self, value):
        rep = self.rep
        name = self.policy["name"]
        metadata = {"name": name}
        if value is None:
            return metadata
        value = _mapping(rep, "metadata", value)
        if value is None:
            return metadata
        _ignore_unknown(rep, "metadata", value, _METADATA_KEYS)
        if "name" in value and value["name"] != name:
            rep.warn(
                "metadata.name",
                "%s replaced by the hosting's pod name %s" % (_show(value["name"]), _show(name)),
            )
        if value.get("labels") is not None:
            labels = self.labels(value["labels"])
            if labels:
                metadata["labels"] = labels
        return metadata

    def labels(self, value):
        rep = self.rep
        value = _mapping(rep, "metadata.labels", value)
        labels = {}
        for key, text in (value or {}).items():
            path = _key("metadata.labels", key)
            if not isinstance(key, str) or not self._label_key_ok(key):
                rep.error(path, "%s is not a valid label key" % _show(key))
                continue
            if key.startswith(RESERVED_LABEL_PREFIXES):
                rep.warn(path, "ignored; io.podman. and io.containers. labels are reserved")
                continue
            text = _text(rep, path, text)
            if text is None:
                continue
            if not _LABEL_NAME_RE.fullmatch(text):
                rep.error(path, "%s is not a valid label value" % _show(text))
                continue
            labels[key] = text
        return labels

    @staticmethod
    def _label_key_ok(key):
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _LABEL_PREFIX_RE.fullmatch(prefix)):
            return False
        return bool(name) and _LABEL_NAME_RE.fullmatch(name) is not None

    # -- spec ------------------------------------------------------------------------------
    def spec(self, spec):
        rep = self.rep
        policy = self.policy
        _ignore_unknown(rep, "spec", spec, _SPEC_KEYS)
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if key in spec and _boolean(rep, "spec." + key, spec[key]) is True:
                rep.error("spec." + key, "true is not allowed")

        hostname = policy["name"]
        if spec.get("hostname") is not None:
            hostname = _dns_label(rep, "spec.hostname", spec["hostname"]) or hostname

        restart = spec.get("restartPolicy")
        if restart is None:
            restart = "Always"
        elif restart not in RESTART_POLICIES:
            rep.error(
                "spec.restartPolicy",
                "must be one of %s, got %s" % (", ".join(RESTART_POLICIES), _show(restart)),
            )

        pod_user = pod_group = None
        if spec.get("securityContext") is not None:
            context = _mapping(rep, "spec.securityContext", spec["securityContext"])
            if context is not None:
                pod_user, pod_group, _ = _security_context(
                    rep, "spec.securityContext", context, _POD_SECURITY_KEYS
                )
                self.pod_user_refused = "runAsUser" in context and pod_user is None

        volumes = self.volumes(spec.get("volumes"))
        containers = []
        raw = spec.get("containers")
        if raw is None or raw == []:
            rep.error("spec.containers", "required, at least one container")
        elif _sequence(rep, "spec.containers", raw) is not None:
            if len(raw) > policy["max_containers"]:
                rep.error(
                    "spec.containers",
                    "%d containers; the policy allows at most %d"
                    % (len(raw), policy["max_containers"]),
                )
            names = set()
            host_ports = set()
            for i, container in enumerate(raw):
                rendered = self.container(
                    i, container, volumes, names, host_ports, pod_user, pod_group
                )
                if rendered is not None:
                    containers.append(rendered)

        declared = self.declared_tcp
        if containers and not rep.errors:
            for port in sorted(self.socket_ports - declared):
                rep.error(
                    "spec.containers",
                    "no container has containerPort %d (TCP), a socket port of the policy" % port,
                )

        used = set()
        for container in containers:
            for mount in container.get("volumeMounts", ()):
                used.add(mount["name"])
        rendered_volumes = []
        for name, (i, volume) in volumes.items():
            if volume is None:
                continue
            if name not in used and i is not None:
                rep.warn(_index("spec.volumes", i), "volume %s is not mounted" % _show(name))
            if "emptyDir" in volume:
                volume = self.memory_volume(volume)
            rendered_volumes.append(volume)
        total = sum(size for _claim, size in self.memory_volumes)
        limit = policy["resources"].get("memory")
        if limit is not None and total > _memory_bytes(limit):
            rep.error(
                "spec.volumes",
                "the in-memory volumes take %d bytes in all (each emptyDir's sizeLimit, else the"
                " policy's default_memory_volume_size of %s), more than the pod's memory limit"
                " of %s (policy resources.memory)"
                % (total, policy["default_memory_volume_size"], limit),
            )

        result = {"hostname": hostname, "restartPolicy": restart, "containers": containers}
        if rendered_volumes:
            result["volumes"] = rendered_volumes
        return result

    # -- volumes ---------------------------------------------------------------------------
    def memory_volume(self, volume):
        """An in-memory emptyDir as podman runs it: a named volume the runner creates as a
        tmpfs of the volume's size before each start (claim <pod>-memory-<volume>), shared by
        the pod's containers. podman's own emptyDir is a directory on disk (4.3) or a tmpfs
        per container without a size (5.x)."""
        claim = "%s-memory-%s" % (self.policy["name"], volume["name"])
        size = volume["emptyDir"].get("sizeLimit") or self.policy["default_memory_volume_size"]
        self.memory_volumes.append((claim, _memory_bytes(size)))
        return {"name": volume["name"], "persistentVolumeClaim": {"claimName": claim}}

    def volumes(self, value):
        """name -> (index, rendered volume or None when invalid)."""
        rep = self.rep
        volumes = {}
        if value is None:
            return volumes
        if _sequence(rep, "spec.volumes", value) is None:
            return volumes
        for i, volume in enumerate(value):
            path = _index("spec.volumes", i)
            volume = _mapping(rep, path, volume)
            if volume is None:
                continue
            if "name" not in volume:
                rep.error(path + ".name", "required")
                continue
            name = _dns_label(rep, path + ".name", volume["name"])
            if name is None:
                continue
            if name in volumes:
                rep.error(path + ".name", "%s is used by another volume" % _show(name))
                continue
            volumes[name] = (i, self.volume(path, name, volume))
        return volumes

    def volume(self, path, name, volume):
        rep = self.rep
        sources = [key for key in volume if key != "name"]
        for key in sources:
            if key not in ("hostPath", "emptyDir"):
                rep.error(
                    _key(path, key),
                    "volume type not allowed; use hostPath (type: Directory) or emptyDir "
                    "(medium: Memory)",
                )
        known = [key for key in sources if key in ("hostPath", "emptyDir")]
        if len(known) > 1:
            rep.error(path, "volume %s has both hostPath and emptyDir; use one" % _show(name))
            return None
        if not sources:
            rep.error(path, "volume %s needs hostPath or emptyDir" % _show(name))
            return None
        if not known:
            return None
        if known[0] == "hostPath":
            return self.host_path(path + ".hostPath", name, volume["hostPath"])
        return self.empty_dir(path + ".emptyDir", name, volume["emptyDir"])

    def host_path(self, path, name, value):
        rep = self.rep
        value = _mapping(rep, path, value)
        if value is None:
            return None
        _ignore_unknown(rep, path, value, ("path", "type"))
        ok = True
        if value.get("type") is None:
            rep.error(path + ".type", "required, must be Directory")
            ok = False
        elif value["type"] != "Directory":
            rep.error(path + ".type", "must be Directory, got %s" % _show(value["type"]))
            ok = False
        if value.get("path") in (None, ""):
            rep.error(path + ".path", "required")
            return None
        tenant_path = _text(rep, path + ".path", value["path"])
        if tenant_path is None:
            return None
        resolved, problem = _resolve_host_dir(self.policy["volumes_base_dir"], tenant_path)
        if problem is not None:
            rep.error(path + ".path", problem)
            return None
        if not ok:
            return None
        return {"name": name, "hostPath": {"path": resolved, "type": "Directory"}}

    def empty_dir(self, path, name, value):
        rep = self.rep
        value = _mapping(rep, path, value, allow_null=True)
        if value is None:
            return None
        _ignore_unknown(rep, path, value, ("medium", "sizeLimit"))
        if value.get("medium") != "Memory":
            rep.error(
                path + ".medium",
                "must be Memory (a tmpfs); disk-backed emptyDir is not supported",
            )
            return None
        rendered = {"medium": "Memory"}
        if value.get("sizeLimit") is not None:
            size = _memory(value["sizeLimit"])
            if size is None:
                rep.error(
                    path + ".sizeLimit",
                    "%s is not a size (e.g. 64Mi)" % _show(value["sizeLimit"]),
                )
                return None
            rendered["sizeLimit"] = size
        return {"name": name, "emptyDir": rendered}


def memory_volumes(pod):
    """[(claim, bytes)] of a rendered pod's in-memory volumes (its annotation): what the
    runner creates as tmpfs volumes before podman kube play."""
    annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
    result = []
    for item in str(annotations.get(MEMORY_VOLUMES_ANNOTATION, "")).split(","):
        claim, _, size = item.partition("=")
        if claim and size.isascii() and size.isdigit() and len(size) <= 20:
            result.append((claim, int(size)))
    return result


def render_pod(pod_text, policy, strict=False):
    """Validate the tenant's pod YAML (``str`` or ``bytes``) against ``policy`` (a mapping
    or YAML text, normalised with :func:`load_policy`) and return a :class:`RenderResult`.

    Raises :class:`PodSpecError` with every error; with ``strict`` warnings are errors too."""
    policy = _normalised(policy)
    doc = _load_yaml(pod_text, "document")
    rep = _Report()
    renderer = _Renderer(policy, rep)
    pod = renderer.render(doc)
    if strict and rep.warnings:
        raise PodSpecError(rep.errors + rep.warnings, rep.warnings)
    if rep.errors or pod is None:
        raise PodSpecError(rep.errors or ["document: invalid"], rep.warnings)
    return RenderResult(pod, rep.warnings, renderer.env_files, renderer.env_texts)
