# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The system policy: :func:`load_policy` validates it and fills in every default."""

import copy
import os
import re

from .constants import (
    DEFAULT_CONTAINER_LOG_MAX,
    DEFAULT_MAX_CONTAINERS,
    DEFAULT_MEMORY_VOLUME_SIZE,
    MAX_CONTAINERS_LIMIT,
    MAX_ID,
    NETWORK_MODES,
)
from .messages import PodSpecError, _index, _key, _Report, _show, unknown_key
from .probes import DEFAULT_LIMITS as PROBE_DEFAULT_LIMITS
from .probes import LIMIT_BOUNDS as PROBE_LIMIT_BOUNDS
from .values import (
    _absolute_path,
    _boolean,
    _cpu,
    _dns_label,
    _is_int,
    _mapping,
    _memory,
    _sequence,
    _text,
)
from .yamlsafe import _load_yaml

_EXPOSED_RE = re.compile(r"([0-9]{1,5})/(tcp|udp|sctp)", re.ASCII | re.IGNORECASE)
_REGISTRY_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-]+[a-z0-9]+)*)*",
    re.ASCII,
)


_POLICY_KEYS = (
    "name",
    "volumes_base_dir",
    "volumes_containers_gid_share",
    "volumes_containers_gid",
    "container_env_dir",
    "provider_env_dir",
    "tmp_dir",
    "socket_ports",
    "exposed_ports",
    "pidfile",
    "allowed_registries",
    "default_run_as_user",
    "default_run_as_group",
    "containers",
    "network",
    "resources",
    "max_containers",
    "default_memory_volume_size",
    "restarts_max",
    "restarts_window",
    "container_log_max",
    "probe_limits",
)
# The runner's crash handling (pod_policy.supervise): a container that ends is started again
# after 1, 2, 4, ... s; the restarts_max-th end within restarts_window seconds fails the unit.
_RESTART_BOUNDS = {
    "restarts_max": (5, 2, 100),
    "restarts_window": (300, 10, 86400),
}
_POLICY_CONTAINER_KEYS = ("read_only_root_filesystem", "systemd")


def _policy_dir(rep, path, value, required=False):
    if value is None:
        if required:
            rep.error(path, "required")
        return None
    text = _absolute_path(rep, path, value)
    if text is None:
        return None
    if ".." in text.split("/"):
        rep.error(path, '%s must not contain ".."' % _show(text))
        return None
    return os.path.normpath(text)


def _policy_id(rep, path, value, minimum):
    if value is None:
        return None
    if _is_int(value) and minimum <= value <= MAX_ID:
        return value
    rep.error(
        path,
        "must be an integer between %d and %d, got %s" % (minimum, MAX_ID, _show(value))
        + (" (0 is root)" if value == 0 and minimum == 1 and _is_int(value) else ""),
    )
    return None


def load_policy(source):
    """Validate and normalise a system policy (YAML text, bytes or a mapping).

    Returns a new dict holding every key with its default filled in; raises
    :class:`PodSpecError` listing every problem as ``policy.<key>: problem``.
    Normalising an already normalised policy returns an equal dict."""
    if isinstance(source, (str, bytes, bytearray)):
        source = _load_yaml(source, "policy", "policy")
    rep = _Report()
    data = _mapping(rep, "policy", source)
    if data is None:
        raise PodSpecError(rep.errors)
    for key in data:
        if key not in _POLICY_KEYS:
            rep.error(_key("policy", key), unknown_key(key, _POLICY_KEYS))

    policy = {}
    policy["name"] = None
    if data.get("name") is None:
        rep.error("policy.name", "required")
    else:
        policy["name"] = _dns_label(rep, "policy.name", data["name"])

    base = _policy_dir(rep, "policy.volumes_base_dir", data.get("volumes_base_dir"), True)
    policy["volumes_base_dir"] = base

    share = data.get("volumes_containers_gid_share", False)
    policy["volumes_containers_gid_share"] = bool(
        _boolean(rep, "policy.volumes_containers_gid_share", share)
    )
    gid = data.get("volumes_containers_gid", 0)
    if _is_int(gid) and 0 <= gid <= MAX_ID:
        policy["volumes_containers_gid"] = gid
    else:
        rep.error(
            "policy.volumes_containers_gid",
            "must be an integer between 0 and %d, got %s" % (MAX_ID, _show(gid)),
        )
        policy["volumes_containers_gid"] = 0

    policy["container_env_dir"] = _policy_dir(
        rep, "policy.container_env_dir", data.get("container_env_dir")
    )
    # the provider's env files, outside the tenant's tree: read after the tenant's own
    policy["provider_env_dir"] = _policy_dir(
        rep, "policy.provider_env_dir", data.get("provider_env_dir")
    )
    tmp_dir = _policy_dir(rep, "policy.tmp_dir", data.get("tmp_dir"))
    if tmp_dir is None and base is not None:
        tmp_dir = os.path.join(base, "tmp")
    policy["tmp_dir"] = tmp_dir
    pidfile = _policy_dir(rep, "policy.pidfile", data.get("pidfile"))
    if pidfile is None and base is not None:
        pidfile = os.path.join(base, "pod.pid")
    policy["pidfile"] = pidfile

    policy["socket_ports"] = _policy_socket_ports(rep, data.get("socket_ports"))
    policy["exposed_ports"] = _policy_exposed_ports(rep, data.get("exposed_ports"))

    registries = []
    value = data.get("allowed_registries")
    if value is not None and _sequence(rep, "policy.allowed_registries", value) is not None:
        for i, entry in enumerate(value):
            path = _index("policy.allowed_registries", i)
            text = _text(rep, path, entry)
            if text is None:
                continue
            text = text.strip().rstrip("/").lower()
            if not _REGISTRY_RE.fullmatch(text):
                rep.error(
                    path,
                    "%s is not a registry host or host/path prefix (e.g. quay.io/myorg)"
                    % _show(entry),
                )
            elif text not in registries:
                registries.append(text)
    policy["allowed_registries"] = registries

    policy["default_run_as_user"] = _policy_id(
        rep, "policy.default_run_as_user", data.get("default_run_as_user"), 1
    )
    policy["default_run_as_group"] = _policy_id(
        rep, "policy.default_run_as_group", data.get("default_run_as_group"), 1
    )

    containers = {}
    value = data.get("containers")
    if value is not None and _mapping(rep, "policy.containers", value) is not None:
        for name, overrides in value.items():
            path = _key("policy.containers", name)
            if _dns_label(rep, path, name) is None:
                continue
            if _mapping(rep, path, overrides, allow_null=True) is None:
                continue
            entry = {"read_only_root_filesystem": True, "systemd": False}
            for key, flag in (overrides or {}).items():
                if key not in _POLICY_CONTAINER_KEYS:
                    rep.error(_key(path, key), unknown_key(key, _POLICY_CONTAINER_KEYS))
                    continue
                flag = _boolean(rep, _key(path, key), flag)
                if flag is not None:
                    entry[key] = flag
            containers[name] = entry
    policy["containers"] = containers

    network = data.get("network", "default")
    if network not in NETWORK_MODES:
        rep.error(
            "policy.network",
            "must be one of %s, got %s" % (", ".join(NETWORK_MODES), _show(network)),
        )
        network = "default"
    policy["network"] = network
    if network == "none" and policy["exposed_ports"]:
        rep.error("policy.exposed_ports", "cannot publish ports when network is none")

    resources = {}
    value = data.get("resources")
    if value is not None and _mapping(rep, "policy.resources", value) is not None:
        for key, amount in value.items():
            path = _key("policy.resources", key)
            if key == "cpu":
                normalised = _cpu(amount)
                if normalised is None:
                    rep.error(path, "%s is not a CPU amount (e.g. 1, 0.5, 500m)" % _show(amount))
                else:
                    resources["cpu"] = normalised
            elif key == "memory":
                normalised = _memory(amount)
                if normalised is None:
                    rep.error(path, "%s is not a memory amount (e.g. 512Mi, 1Gi)" % _show(amount))
                else:
                    resources["memory"] = normalised
            else:
                rep.error(path, unknown_key(key, ("cpu", "memory")))
    policy["resources"] = resources

    policy["default_memory_volume_size"] = _policy_memory(
        rep,
        "policy.default_memory_volume_size",
        data.get("default_memory_volume_size"),
        DEFAULT_MEMORY_VOLUME_SIZE,
        "64Mi",
    )
    # The bound of the pod's container log between rotations (the pod unit's runner empties
    # a log that grows beyond it; pod_policy.supervise).
    policy["container_log_max"] = _policy_memory(
        rep,
        "policy.container_log_max",
        data.get("container_log_max"),
        DEFAULT_CONTAINER_LOG_MAX,
        "100Mi",
    )

    policy["probe_limits"] = _policy_probe_limits(rep, data.get("probe_limits"))

    policy["max_containers"] = _policy_int(
        rep,
        "policy.max_containers",
        data.get("max_containers", DEFAULT_MAX_CONTAINERS),
        DEFAULT_MAX_CONTAINERS,
        1,
        MAX_CONTAINERS_LIMIT,
    )
    for key, (default, low, high) in _RESTART_BOUNDS.items():
        policy[key] = _policy_int(rep, "policy." + key, data.get(key, default), default, low, high)

    if rep.errors:
        raise PodSpecError(rep.errors)
    global _LAST_POLICY
    _LAST_POLICY = (policy, copy.deepcopy(policy))
    return policy


_LAST_POLICY = (None, None)  # (the last policy load_policy returned, a copy to detect changes)


def _policy_int(rep, path, value, default, low, high):
    """An integer key of the policy from low to high (the caller passes ``default`` when
    the key is absent); ``default`` after an error."""
    if _is_int(value) and low <= value <= high:
        return value
    rep.error(path, "must be an integer between %d and %d, got %s" % (low, high, _show(value)))
    return default


def _policy_memory(rep, path, value, default, example):
    """A memory amount of the policy: ``default`` when it is not given, and after an
    error."""
    size = default if value is None else _memory(value)
    if size is None:
        rep.error(path, "%s is not a memory amount (e.g. %s)" % (_show(value), example))
        return default
    return size


def _policy_probe_limits(rep, value):
    """Bounds of the tenant's probes (pod_policy.probes): the least period, the longest
    timeout and initial delay, the most failures before a restart."""
    limits = dict(PROBE_DEFAULT_LIMITS)
    if value is None or _mapping(rep, "policy.probe_limits", value) is None:
        return limits
    for key, item in value.items():
        path = _key("policy.probe_limits", key)
        if key not in PROBE_LIMIT_BOUNDS:
            rep.error(path, unknown_key(key, PROBE_LIMIT_BOUNDS))
            continue
        low, high = PROBE_LIMIT_BOUNDS[key]
        limits[key] = _policy_int(rep, path, item, limits[key], low, high)
    return limits


def _policy_socket_ports(rep, value):
    ports = {}
    if value is None:
        return ports
    if _mapping(rep, "policy.socket_ports", value) is None:
        return ports
    for raw, entry in value.items():
        path = _key("policy.socket_ports", raw)
        port = raw
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 5:
            port = int(raw)
        if not (_is_int(port) and 1 <= port <= 65535):
            rep.error(path, "%s is not a port number between 1 and 65535" % _show(raw))
            continue
        if port in ports:
            rep.error(path, "port %d is listed twice" % port)
            continue
        entry = _mapping(rep, path, entry)
        if entry is None:
            continue
        for key in entry:
            if key != "dir":
                rep.error(_key(path, key), unknown_key(key, ("dir",)))
        directory = _policy_dir(rep, path + ".dir", entry.get("dir"), True)
        if directory is not None:
            ports[port] = {"dir": directory}
    return ports


def _policy_exposed_ports(rep, value):
    exposed = []
    if value is None:
        return exposed
    if _sequence(rep, "policy.exposed_ports", value) is None:
        return exposed
    for i, entry in enumerate(value):
        path = _index("policy.exposed_ports", i)
        if _is_int(entry):
            entry = "%d/tcp" % entry
        match = _EXPOSED_RE.fullmatch(entry) if isinstance(entry, str) else None
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            rep.error(path, "%s must be PORT/PROTOCOL, e.g. 8443/tcp" % _show(entry))
            continue
        normalised = "%d/%s" % (int(match.group(1)), match.group(2).lower())
        if normalised not in exposed:
            exposed.append(normalised)
    return exposed


def _normalised(policy):
    """``policy`` normalised: a policy load_policy returned and nobody changed since is used
    as is; anything else is validated and normalised here."""
    last = _LAST_POLICY
    if not (policy is last[0] and policy == last[1]):
        policy = load_policy(policy)
    return policy
