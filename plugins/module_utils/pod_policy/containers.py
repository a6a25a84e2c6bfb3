# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering of ``spec.containers[]``: image, command, env (env files merged), ports,
volume mounts and the hardened securityContext of each container."""

import ipaddress
import os
import re

from .constants import PROTOCOLS, PULL_POLICIES, SHM_PATH
from .hostfiles import _read_env_file
from .messages import _index, _show
from .probes import container_probes
from .security import _SECURITY_KEYS, _security_context
from .values import (
    _ENV_NAME_RE,
    _boolean,
    _container_path,
    _digest_problem,
    _dns_label,
    _ignore_unknown,
    _kernel_path,
    _mapping,
    _parse_image,
    _port,
    _registry_allowed,
    _sequence,
    _text,
)

_PORT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?", re.ASCII)

_CONTAINER_KEYS = (
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env",
    "ports",
    "volumeMounts",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
)
_SYSTEMD_TMPFS = (("run", "/run"), ("lock", "/run/lock"), ("tmp", "/tmp"))


class _ContainerRenderer:
    """The methods of :class:`_Renderer` (render.py) for ``spec.containers[]``.  They use
    the state ``_Renderer.__init__`` sets: ``policy``, ``rep``, ``exposed``,
    ``socket_ports``, ``declared_tcp``, ``env_files`` and ``pod_user_refused``."""

    # -- containers ------------------------------------------------------------------------
    def container(self, i, value, volumes, names, host_ports, pod_user, pod_group):
        rep = self.rep
        policy = self.policy
        path = _index("spec.containers", i)
        value = _mapping(rep, path, value)
        if value is None:
            return None
        errors_before = len(rep.errors)
        _ignore_unknown(rep, path, value, _CONTAINER_KEYS)

        name = None
        if value.get("name") is None:
            rep.error(path + ".name", "required")
        else:
            name = _dns_label(rep, path + ".name", value["name"])
            if name is not None:
                if name in names:
                    rep.error(path + ".name", "%s is used by another container" % _show(name))
                names.add(name)
        overrides = policy["containers"].get(name) or {
            "read_only_root_filesystem": True,
            "systemd": False,
        }

        image = None
        if value.get("image") is None:
            rep.error(path + ".image", "required")
        else:
            image = self.image(path + ".image", value["image"])

        rendered = {"name": name, "image": image}
        pull = value.get("imagePullPolicy")
        if pull is not None:
            if pull in PULL_POLICIES:
                rendered["imagePullPolicy"] = pull
            else:
                rep.error(
                    path + ".imagePullPolicy",
                    "must be one of %s, got %s" % (", ".join(PULL_POLICIES), _show(pull)),
                )
        for key in ("command", "args"):
            if value.get(key) is not None:
                items = self.string_list(path + "." + key, value[key])
                if items is not None:
                    rendered[key] = items
        if value.get("workingDir") is not None:
            working_dir = self.working_dir(path + ".workingDir", value["workingDir"])
            if working_dir is not None:
                rendered["workingDir"] = working_dir

        env = self.env(path + ".env", value.get("env"), name)
        if env:
            rendered["env"] = env

        ports = self.ports(path + ".ports", value.get("ports"), host_ports)
        self.declared_tcp.update(p["containerPort"] for p in ports if p["protocol"] == "TCP")
        # Only published ports are rendered: podman 4.3's kube play publishes every
        # containerPort on the host even without a hostPort (fixed in later podman), which
        # would give each pod a host TCP listener and make two tenants' 8080 collide.
        # Socket ports are reached inside the pod's network namespace and need no entry.
        published = [p for p in ports if "hostPort" in p]
        if published:
            rendered["ports"] = published

        mounts, mounts_storage = self.mounts(
            path + ".volumeMounts", value.get("volumeMounts"), volumes
        )
        if overrides["systemd"]:
            self.systemd_mounts(i, mounts, volumes)
        if mounts:
            rendered["volumeMounts"] = mounts

        if self.policy["resources"]:
            limits = dict(self.policy["resources"])
            rendered["resources"] = {"limits": limits}

        rendered["securityContext"] = self.container_security(
            path, value.get("securityContext"), overrides, mounts_storage, pod_user, pod_group
        )
        # never given to podman: run by the pod unit's runner (pod_policy.probes)
        probes = container_probes(self, path, value, ports)
        if len(rep.errors) != errors_before:
            return None
        if probes and name is not None:
            self.probes[name] = probes
        return rendered

    def image(self, path, value):
        rep = self.rep
        text = _text(rep, path, value)
        if text is None:
            return None
        parsed = _parse_image(text)
        if parsed is None:
            rep.error(path, "%s is not a valid image reference" % _show(text))
            return None
        registry, image_path, _tag, digest, normalised = parsed
        problem = digest and _digest_problem(digest)
        if problem:
            rep.error(path, "%s is not a valid image reference: %s" % (_show(text), problem))
            return None
        allowed = self.policy["allowed_registries"]
        if not _registry_allowed(registry, image_path, allowed):
            rep.error(
                path,
                "%s is not from an allowed registry (%s)" % (_show(text), ", ".join(allowed)),
            )
            return None
        return normalised

    def working_dir(self, path, value):
        """The normalised working directory; none in the kernel's interfaces (/dev/shm, an
        ordinary tmpfs, excepted)."""
        normalised = _container_path(self.rep, path, value)
        if normalised is None:
            return None
        kernel = _kernel_path(normalised)
        if kernel is not None and not _below(normalised, SHM_PATH):
            self.rep.error(
                path,
                "%s %s, which a container may not use as its working directory"
                % (_show(value), _is(normalised, kernel)),
            )
            return None
        return normalised

    def string_list(self, path, value):
        rep = self.rep
        if _sequence(rep, path, value) is None:
            return None
        items = []
        for j, item in enumerate(value):
            text = _text(rep, _index(path, j), item, multiline=True)
            if text is not None:
                items.append(text)
        return items

    def env(self, path, value, container_name):
        rep = self.rep
        entries = {}  # name -> value, insertion order kept
        origins = {}
        if value is not None and _sequence(rep, path, value) is not None:
            for j, item in enumerate(value):
                if type(item) is dict and len(item) == 2:
                    # the usual entry, checked inline: {name: VALID_NAME, value: "text"}
                    name = item.get("name")
                    text = item.get("value")
                    if (
                        type(name) is str
                        and type(text) is str
                        and name not in entries
                        and _ENV_NAME_RE.fullmatch(name)
                        and "\x00" not in text
                    ):
                        entries[name] = text
                        origins[name] = j
                        continue
                here = _index(path, j)
                item = _mapping(rep, here, item)
                if item is None:
                    continue
                _ignore_unknown(rep, here, item, ("name", "value", "valueFrom"))
                if "valueFrom" in item:
                    rep.error(
                        here + ".valueFrom",
                        "not supported; put the value in the env file of the container",
                    )
                    continue
                if item.get("name") is None:
                    rep.error(here + ".name", "required")
                    continue
                name = _text(rep, here + ".name", item["name"])
                if name is None:
                    continue
                if not _ENV_NAME_RE.fullmatch(name):
                    rep.error(here + ".name", "%s is not a valid variable name" % _show(name))
                    continue
                text = item.get("value")
                if text is None:
                    text = ""
                text = _text(rep, here + ".value", text, multiline=True)
                if text is None:
                    continue
                if name in entries:
                    rep.warn(here + ".name", "%s is set twice; the last value wins" % _show(name))
                entries[name] = text
                origins[name] = j

        # The env files, later wins: the tenant's own (container_env_dir), then the
        # provider's (provider_env_dir, outside the tenant's tree).
        tenant_names = {}
        for key in ("container_env_dir", "provider_env_dir"):
            env_dir = self.policy.get(key)
            if env_dir is None or container_name is None:
                continue
            env_path = os.path.join(env_dir, "%s-%s.env" % (self.policy["name"], container_name))
            loaded = _read_env_file(env_path, rep, self.env_texts)
            if loaded is None:
                continue
            self.env_files.append(env_path)
            for name, text, number in loaded:
                if name in origins:
                    rep.warn(
                        _index(path, origins.pop(name)) + ".value",
                        "replaced by %s:%d" % (env_path, number),
                    )
                if key == "container_env_dir":
                    tenant_names[name] = "%s:%d" % (env_path, number)
                elif name in tenant_names:
                    # the value itself is not shown: it may be a secret
                    rep.warn(
                        tenant_names.pop(name),
                        "%s is set by your provider; their value is used" % name,
                    )
                entries[name] = text
        return [{"name": name, "value": text} for name, text in entries.items()]

    def ports(self, path, value, host_ports):
        rep = self.rep
        rendered = []
        if value is None or _sequence(rep, path, value) is None:
            return rendered
        for j, item in enumerate(value):
            here = _index(path, j)
            item = _mapping(rep, here, item)
            if item is None:
                continue
            _ignore_unknown(
                rep, here, item, ("containerPort", "protocol", "name", "hostPort", "hostIP")
            )
            if item.get("containerPort") is None:
                rep.error(here + ".containerPort", "required")
                continue
            port = _port(rep, here + ".containerPort", item["containerPort"])
            protocol = item.get("protocol", "TCP")
            if isinstance(protocol, str) and protocol.upper() in PROTOCOLS:
                protocol = protocol.upper()
            else:
                rep.error(
                    here + ".protocol",
                    "must be one of %s, got %s" % (", ".join(PROTOCOLS), _show(protocol)),
                )
                continue
            if port is None:
                continue
            entry = {"containerPort": port, "protocol": protocol}
            if item.get("name") is not None:
                name = _text(rep, here + ".name", item["name"])
                if name is not None and not _PORT_NAME_RE.fullmatch(name):
                    rep.error(
                        here + ".name",
                        "%s is not a valid port name (at most 15 lowercase letters, digits "
                        "and '-')" % _show(name),
                    )
                elif name is not None:
                    entry["name"] = name
            host_port = None
            if item.get("hostPort") is not None:
                host_port = _port(rep, here + ".hostPort", item["hostPort"])
            host_ip = None
            if item.get("hostIP") is not None:
                host_ip = _text(rep, here + ".hostIP", item["hostIP"])
                if host_ip is not None:
                    try:
                        host_ip = str(ipaddress.ip_address(host_ip))
                    except ValueError:
                        rep.error(here + ".hostIP", "%s is not an IP address" % _show(host_ip))
                        host_ip = None
            exposed = host_port is not None and (host_port, protocol) in self.exposed
            if exposed:
                if (host_port, protocol) in host_ports:
                    rep.error(
                        here + ".hostPort",
                        "%d/%s is published twice" % (host_port, protocol.lower()),
                    )
                host_ports.add((host_port, protocol))
                entry["hostPort"] = host_port
                if host_ip is not None:
                    entry["hostIP"] = host_ip
            elif host_port is not None:
                rep.warn(
                    here + ".hostPort",
                    "%d/%s is not in the policy's exposed_ports; removed"
                    % (host_port, protocol.lower()),
                )
            elif "hostIP" in item:
                rep.warn(here + ".hostIP", "ignored without an exposed hostPort")
            if not exposed and not (protocol == "TCP" and port in self.socket_ports):
                rep.warn(
                    here,
                    "%d/%s is neither a socket port nor an exposed port of the policy; "
                    "reachable only inside the pod" % (port, protocol),
                )
            rendered.append(entry)
        return rendered

    def mounts(self, path, value, volumes):
        """Returns (rendered mounts, whether a hostPath volume is mounted)."""
        rep = self.rep
        rendered = []
        storage = False
        if value is None or _sequence(rep, path, value) is None:
            return rendered, storage
        seen = {}  # normalised mountPath -> the first volumeMounts[j] that has it
        for j, item in enumerate(value):
            here = _index(path, j)
            item = _mapping(rep, here, item)
            if item is None:
                continue
            _ignore_unknown(
                rep,
                here,
                item,
                ("name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation"),
            )
            for key in ("subPath", "subPathExpr"):
                if key in item:
                    rep.error(here + "." + key, "not supported; mount a volume for the directory")
            if "mountPropagation" in item:
                rep.warn(here + ".mountPropagation", "ignored")
            name = None
            if item.get("name") is None:
                rep.error(here + ".name", "required")
            else:
                name = _text(rep, here + ".name", item["name"])
                if name is not None and name not in volumes:
                    rep.error(here + ".name", "no volume named %s in spec.volumes" % _show(name))
                    name = None
            mount_path = None
            if item.get("mountPath") is None:
                rep.error(here + ".mountPath", "required")
            else:
                mount_path = self.mount_path(here + ".mountPath", item["mountPath"], name, volumes)
                if mount_path is not None:
                    if mount_path in seen:
                        rep.error(
                            here + ".mountPath",
                            "%s already mounted by %s"
                            % (_spelt(item["mountPath"], mount_path), seen[mount_path]),
                        )
                    else:
                        seen[mount_path] = "volumeMounts[%d]" % j
            read_only = False
            if "readOnly" in item:
                read_only = _boolean(rep, here + ".readOnly", item["readOnly"])
            if name is None or mount_path is None:
                continue
            mount = {"name": name, "mountPath": mount_path}
            if read_only:
                mount["readOnly"] = True
            volume = volumes[name][1]
            if volume is not None and "hostPath" in volume:
                storage = True
            rendered.append(mount)
        return rendered, storage

    def mount_path(self, path, value, name, volumes):
        """The normalised destination of a mount, or None.  Nothing is mounted on / or on the
        kernel's interfaces (/proc, /sys, /dev and below), except an in-memory emptyDir on
        /dev/shm itself; ``name`` is the mounted volume (None when invalid)."""
        rep = self.rep
        normalised = _container_path(rep, path, value)
        if normalised is None:
            return None
        if ":" in normalised:
            rep.error(path, "must not contain ':'")
            return None
        if normalised == "/":
            rep.error(path, "%s is /, which a pod may not mount over" % _show(value))
            return None
        kernel = _kernel_path(normalised)
        if kernel is None:
            return normalised
        if normalised == SHM_PATH:
            volume = volumes[name][1] if name is not None else None
            if volume is None or "emptyDir" in volume:
                return normalised  # (an invalid volume has its own error)
            rep.error(
                path,
                "%s is %s, where only an emptyDir with medium Memory may be mounted"
                % (_show(value), SHM_PATH),
            )
            return None
        rep.error(
            path,
            "%s %s, which a pod may not mount over" % (_show(value), _is(normalised, kernel)),
        )
        return None

    def systemd_mounts(self, i, mounts, volumes):
        """Policy ``systemd: true``: tmpfs on /run, /run/lock and /tmp unless mounted."""
        taken = {mount["mountPath"] for mount in mounts}
        for suffix, mount_path in _SYSTEMD_TMPFS:
            if mount_path in taken:
                continue
            name = "systemd-%d-%s" % (i, suffix)
            if name in volumes:
                index = volumes[name][0]
                self.rep.error(
                    _index("spec.volumes", index) + ".name",
                    "%s is reserved for the systemd mode of the container" % _show(name),
                )
                continue
            volumes[name] = (None, {"name": name, "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": name, "mountPath": mount_path})

    def container_security(self, path, value, overrides, mounts_storage, pod_user, pod_group):
        rep = self.rep
        policy = self.policy
        here = path + ".securityContext"
        user = group = read_only = None
        if value is not None:
            context = _mapping(rep, here, value)
            if context is not None:
                user, group, read_only = _security_context(
                    rep,
                    here,
                    context,
                    _SECURITY_KEYS,
                    read_only_allowed_off=not overrides["read_only_root_filesystem"],
                )
        if user is None:
            user = pod_user if pod_user is not None else policy["default_run_as_user"]
        tenant_group = group if group is not None else pod_group
        group = tenant_group
        if group is None:
            group = policy["default_run_as_group"]
        if group is None:
            group = user
        user_refused = isinstance(value, dict) and "runAsUser" in value
        if user is None and not user_refused and not self.pod_user_refused:
            rep.error(
                here + ".runAsUser",
                "required; the policy sets no default_run_as_user",
            )
        if policy["volumes_containers_gid_share"] and mounts_storage:
            shared = policy["volumes_containers_gid"]
            if tenant_group is not None and tenant_group != shared:
                rep.warn(
                    here + ".runAsGroup",
                    "%d replaced by %d; the policy shares the hosting's group with containers "
                    "that mount storage" % (tenant_group, shared),
                )
            group = shared
        if read_only is None:
            read_only = overrides["read_only_root_filesystem"]
        return {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": bool(read_only),
            "runAsNonRoot": True,
            "runAsUser": user,
            "runAsGroup": group,
        }


def _below(normalised, root):
    return normalised == root or normalised.startswith(root + "/")


def _is(normalised, root):
    """``is /proc`` or ``is under /proc``."""
    return ("is %s" if normalised == root else "is under %s") % root


def _spelt(value, normalised):
    """``"/srv" is`` when the tenant wrote the normalised path, else ``"//srv/" is /srv,``."""
    if value == normalised:
        return "%s is" % _show(value)
    return "%s is %s," % (_show(value), normalised)
