# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``livenessProbe``, ``readinessProbe`` and ``startupProbe`` of a container.

Podman would turn a probe into a healthcheck run *inside* the image (``curl -f`` for
``httpGet``, ``nc -z`` for ``tcpSocket``: an image without them is "unhealthy" for ever), and
``--health-on-failure=restart`` is broken before podman 4.4.3. So the probes are never given
to podman: the engine checks them against the policy's bounds and writes them, normalised,
into an annotation of the rendered pod (:data:`PROBES_ANNOTATION`), and the pod unit's
runner runs them (pod_policy.supervise): ``exec`` with ``podman exec``, ``httpGet`` and
``tcpSocket`` from outside the container, in the pod's network namespace, so the image
needs nothing for them.
"""

import json
import re

from .constants import PROBES_ANNOTATION
from .messages import _index, _show
from .values import _ignore_unknown, _is_int, _mapping, _sequence, _text

PROBE_KINDS = (
    ("livenessProbe", "liveness"),
    ("readinessProbe", "readiness"),
    ("startupProbe", "startup"),
)
_PROBE_KEYS = (
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
    "terminationGracePeriodSeconds",
)
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}", re.ASCII)
_PATH_RE = re.compile(r"/[\x21-\x7e]{0,1023}", re.ASCII)
MAX_HEADERS = 10

# Kubernetes' defaults; the policy's probe_limits bound what a tenant may ask for.
DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "successThreshold": 1,
}
DEFAULT_LIMITS = {
    "period_min": 5,
    "timeout_max": 10,
    "initial_delay_max": 600,
    "failure_threshold_max": 10,
}
LIMIT_BOUNDS = {
    "period_min": (1, 3600),
    "timeout_max": (1, 300),
    "initial_delay_max": (0, 86400),
    "failure_threshold_max": (1, 100),
}


def _seconds(rep, path, value, low, high, why):
    if not _is_int(value) or not low <= value <= high:
        rep.error(
            path, "must be an integer from %d to %d%s, got %s" % (low, high, why, _show(value))
        )
        return None
    return value


def _probe_port(rep, path, value, named_ports):
    if _is_int(value):
        if 1 <= value <= 65535:
            return value
        rep.error(path, "%s is not a port (1-65535)" % _show(value))
        return None
    if isinstance(value, str):
        if value in named_ports:
            return named_ports[value]
        # isdigit() is also true of "²" and "٣", which int() refuses: ASCII digits only
        if value.isascii() and value.isdigit() and len(value) <= 5 and 1 <= int(value) <= 65535:
            return int(value)
        rep.error(
            path,
            "%s is neither a port number nor the name of one of this container's ports"
            % _show(value),
        )
        return None
    rep.error(path, "must be a port number or a port name, got %s" % _show(value))
    return None


def _handler(renderer, path, value, named_ports):
    """The one handler of a probe, normalised: {"exec": [argv]}, {"http": {...}} or
    {"tcp": port}; None after an error."""
    rep = renderer.rep
    given = [key for key in ("exec", "httpGet", "tcpSocket", "grpc") if value.get(key) is not None]
    if len(given) != 1:
        rep.error(
            path,
            "needs exactly one of exec, httpGet and tcpSocket, got %s"
            % (", ".join(given) if given else "none"),
        )
        return None
    key = given[0]
    here = "%s.%s" % (path, key)
    if key == "grpc":
        rep.error(here, "is not supported; use exec, httpGet or tcpSocket")
        return None
    item = _mapping(rep, here, value[key])
    if item is None:
        return None
    if key == "exec":
        _ignore_unknown(rep, here, item, ("command",))
        if item.get("command") is None:
            rep.error(here + ".command", "required")
            return None
        command = renderer.string_list(here + ".command", item["command"])
        if not command:
            if command == []:
                rep.error(here + ".command", "must not be empty")
            return None
        return {"exec": command}
    if key == "tcpSocket":
        _ignore_unknown(rep, here, item, ("port", "host"))
        if item.get("host") is not None:
            rep.error(here + ".host", "is not allowed: a probe connects to the pod itself")
        if item.get("port") is None:
            rep.error(here + ".port", "required")
            return None
        port = _probe_port(rep, here + ".port", item["port"], named_ports)
        return None if port is None or item.get("host") is not None else {"tcp": port}
    _ignore_unknown(rep, here, item, ("port", "path", "scheme", "httpHeaders", "host"))
    ok = True
    if item.get("host") is not None:
        rep.error(here + ".host", "is not allowed: a probe connects to the pod itself")
        ok = False
    if item.get("port") is None:
        rep.error(here + ".port", "required")
        return None
    port = _probe_port(rep, here + ".port", item["port"], named_ports)
    request_path = item.get("path", "/")
    if not isinstance(request_path, str) or not _PATH_RE.fullmatch(request_path):
        rep.error(
            here + ".path",
            "%s is not a request path (a / then at most 1023 printable ASCII characters, no"
            " spaces)" % _show(request_path),
        )
        ok = False
    scheme = item.get("scheme", "HTTP")
    if scheme not in ("HTTP", "HTTPS"):
        rep.error(here + ".scheme", "must be HTTP or HTTPS, got %s" % _show(scheme))
        ok = False
    headers = []
    raw = item.get("httpHeaders")
    if raw is not None and _sequence(rep, here + ".httpHeaders", raw) is not None:
        if len(raw) > MAX_HEADERS:
            rep.error(here + ".httpHeaders", "at most %d headers" % MAX_HEADERS)
            ok = False
        for j, header in enumerate(raw[:MAX_HEADERS]):
            at = _index(here + ".httpHeaders", j)
            header = _mapping(rep, at, header)
            if header is None:
                ok = False
                continue
            _ignore_unknown(rep, at, header, ("name", "value"))
            name = _text(rep, at + ".name", header.get("name"))
            text = _text(rep, at + ".value", header.get("value", ""))
            if name is not None and not _HEADER_NAME_RE.fullmatch(name):
                rep.error(at + ".name", "%s is not an HTTP header name" % _show(name))
                name = None
            if text is not None and (any(not " " <= c <= "~" for c in text) or len(text) > 1024):
                rep.error(at + ".value", "must be at most 1024 printable ASCII characters")
                text = None
            if name is None or text is None:
                ok = False
            else:
                headers.append([name, text])
    if port is None or not ok:
        return None
    return {"http": {"port": port, "path": request_path, "scheme": scheme, "headers": headers}}


def container_probes(renderer, path, value, ports):
    """The probes of container ``value`` (at ``path``), normalised, keyed liveness,
    readiness, startup; errors and warnings go to ``renderer.rep``."""
    rep = renderer.rep
    limits = renderer.policy["probe_limits"]
    named_ports = {p["name"]: p["containerPort"] for p in ports if p.get("name")}
    result = {}
    for key, kind in PROBE_KINDS:
        if value.get(key) is None:
            continue
        here = "%s.%s" % (path, key)
        item = _mapping(rep, here, value[key])
        if item is None:
            continue
        _ignore_unknown(rep, here, item, _PROBE_KEYS)
        errors = len(rep.errors)
        handler = _handler(renderer, here, item, named_ports)
        numbers = {}
        bounds = {
            "initialDelaySeconds": (0, limits["initial_delay_max"], " (policy probe_limits)"),
            "periodSeconds": (limits["period_min"], 3600, " (policy probe_limits)"),
            "timeoutSeconds": (1, limits["timeout_max"], " (policy probe_limits)"),
            "failureThreshold": (1, limits["failure_threshold_max"], " (policy probe_limits)"),
            "successThreshold": (1, 1 if kind != "readiness" else 10, ""),
        }
        for field, (low, high, why) in bounds.items():
            raw = item.get(field)
            if raw is None:
                numbers[field] = max(low, min(DEFAULTS[field], high))
            else:
                if field == "successThreshold" and kind != "readiness" and raw != 1:
                    rep.error(here + "." + field, "must be 1 for a %s probe" % kind)
                    continue
                numbers[field] = _seconds(rep, here + "." + field, raw, low, high, why)
        if item.get("terminationGracePeriodSeconds") is not None:
            rep.warn(
                here + ".terminationGracePeriodSeconds",
                "ignored: a container stopped by a probe gets the host's stop timeout",
            )
        if (
            numbers.get("timeoutSeconds") is not None
            and numbers.get("periodSeconds") is not None
            and numbers["timeoutSeconds"] > numbers["periodSeconds"]
        ):
            rep.error(
                here + ".timeoutSeconds",
                "%d is longer than periodSeconds (%d)"
                % (numbers["timeoutSeconds"], numbers["periodSeconds"]),
            )
        if len(rep.errors) != errors or handler is None:
            continue
        entry = dict(handler)
        entry.update(
            {
                "initial_delay": numbers["initialDelaySeconds"],
                "period": numbers["periodSeconds"],
                "timeout": numbers["timeoutSeconds"],
                "failure_threshold": numbers["failureThreshold"],
                "success_threshold": numbers["successThreshold"],
            }
        )
        result[kind] = entry
    return result


def pod_probes(pod):
    """{container name: {kind: probe}} of a rendered pod (its annotation): what the pod
    unit's runner runs."""
    annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
    text = annotations.get(PROBES_ANNOTATION)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def annotation(probes):
    """The annotation value of {container name: {kind: probe}}."""
    return json.dumps(probes, sort_keys=True, separators=(",", ":"))
