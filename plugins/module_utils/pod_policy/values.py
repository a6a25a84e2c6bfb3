# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checkers for single fields: each reports into a ``_Report`` and returns the value, or
None when it is invalid; plus image references, CPU and memory amounts."""

import re
from decimal import Decimal

from .constants import DIGEST_HEX_LENGTHS, KERNEL_PATHS
from .messages import _huge, _key, _kind, _show

_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*", re.ASCII)
_CPU_RE = re.compile(r"([0-9]+(\.[0-9]{1,3})?|[0-9]+m)", re.ASCII)
# Bounds of CPU and memory amounts: what a cgroup can be given (an int64 of bytes, and far
# more cores than any host has); a longer text is refused before it is converted.
MAX_CPUS = 1000000
MAX_MEMORY_BYTES = 2**63 - 1
_AMOUNT_MAX_CHARS = 32
_MEMORY_RE = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?", re.ASCII)

# Image references, after github.com/distribution/reference.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
# The digest grammar of the OCI image spec; _digest_problem then admits only the registered
# algorithms, each with its exact length of lowercase hex.
_DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_IMAGE_RE = re.compile(
    r"(?:(?P<domain>" + _DOMAIN + r")/)?"
    r"(?P<path>" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(?P<tag>" + _TAG + r"))?"
    r"(?:@(?P<digest>" + _DIGEST + r"))?",
    re.ASCII,
)
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(rep, path, value, allow_null=False):
    if isinstance(value, dict):
        return value
    if value is None and allow_null:
        return {}
    rep.error(path, "must be a mapping, got %s" % _kind(value))
    return None


def _sequence(rep, path, value):
    if isinstance(value, list):
        return value
    rep.error(path, "must be a list, got %s" % _kind(value))
    return None


def _text(rep, path, value, multiline=False):
    if not isinstance(value, str):
        hint = ""
        if isinstance(value, (bool, int, float)) and not _huge(value):
            hint = ' (quote it: "%s")' % _show(value)
        rep.error(path, "must be a string, got %s%s" % (_kind(value), hint))
        return None
    if "\x00" in value:
        rep.error(path, "must not contain a NUL character")
        return None
    if not multiline and ("\n" in value or "\r" in value):
        rep.error(path, "must be a single line")
        return None
    return value


def _boolean(rep, path, value):
    if isinstance(value, bool):
        return value
    rep.error(path, "must be true or false, got %s" % _show(value))
    return None


def _port(rep, path, value):
    if _is_int(value) and 1 <= value <= 65535:
        return value
    rep.error(path, "must be a port number between 1 and 65535, got %s" % _show(value))
    return None


def _dns_label(rep, path, value):
    text = _text(rep, path, value)
    if text is None:
        return None
    if not _DNS_LABEL_RE.fullmatch(text):
        rep.error(
            path,
            "%s is not a valid name (lowercase letters, digits and '-', starting and "
            "ending with a letter or digit, at most 63 characters)" % _show(text),
        )
        return None
    return text


def _ignore_unknown(rep, path, mapping, known):
    for key in mapping:
        if key not in known:
            rep.warn(_key(path, key), "ignored")


def _absolute_path(rep, path, value):
    text = _text(rep, path, value)
    if text is None:
        return None
    if not text.startswith("/"):
        rep.error(path, "%s must be an absolute path" % _show(text))
        return None
    return text


def _container_path(rep, path, value):
    """An absolute path inside the container (a mountPath, a workingDir), normalised the POSIX
    way without looking at any file system: repeated slashes collapsed, "." dropped, ".."
    removing the component before it (at the root it stays there).  None when invalid."""
    text = _absolute_path(rep, path, value)
    if text is None:
        return None
    parts = []
    for part in text.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def _kernel_path(normalised):
    """The kernel interface (/proc, /sys, /dev) a normalised container path is or lies
    under; None for any other path."""
    for root in KERNEL_PATHS:
        if normalised == root or normalised.startswith(root + "/"):
            return root
    return None


def _digest_problem(digest):
    """Why an image digest (``algorithm:encoded``) cannot be used; None when it can."""
    algorithm, _, encoded = digest.partition(":")
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        return "the digest algorithm %s is not %s" % (
            _show(algorithm),
            " or ".join(sorted(DIGEST_HEX_LENGTHS)),
        )
    rule = "a %s digest is exactly %d lowercase hex digits" % (algorithm, length)
    for char in encoded:
        if char not in "0123456789abcdef":
            return "%s; %s is not one" % (rule, _show(char))
    if len(encoded) != length:
        return "%s, got %d" % (rule, len(encoded))
    return None


def _parse_image(reference):
    """Split and normalise an image reference; None when invalid.  Returns
    (registry, path, tag, digest, normalised reference)."""
    if len(reference) > 512:
        return None
    match = _IMAGE_RE.fullmatch(reference)
    if match is None:
        return None
    domain, path, tag, digest = match.group("domain", "path", "tag", "digest")
    if domain is not None and not (
        "." in domain or ":" in domain or domain == "localhost" or domain != domain.lower()
    ):
        # "library/nginx": the first component is part of the path, not a registry.
        if not _PATH_COMPONENT_RE.fullmatch(domain):
            return None
        path = domain + "/" + path
        domain = None
    if domain is None:
        domain = "docker.io"
        if "/" not in path:
            path = "library/" + path
    if len(domain) + 1 + len(path) > 255:
        return None
    normalised = domain + "/" + path
    if tag is not None:
        normalised += ":" + tag
    elif digest is None:
        tag = "latest"
        normalised += ":latest"
    if digest is not None:
        normalised += "@" + digest
    return domain.lower(), path, tag, digest, normalised


def _registry_allowed(registry, path, allowed):
    if not allowed:
        return True
    name = registry + "/" + path
    for prefix in allowed:
        if name == prefix or name.startswith(prefix + "/"):
            return True
    return False


def _cpu(value):
    if _is_int(value) or isinstance(value, float):
        if isinstance(value, float) and not value == value:  # NaN
            return None
        value = repr(value) if isinstance(value, float) else str(value)
    # at most MAX_CPUS cores: a longer number is no CPU amount and overflows a float
    if (
        isinstance(value, str)
        and len(value) <= _AMOUNT_MAX_CHARS
        and _CPU_RE.fullmatch(value)
        and 0 < Decimal(value.rstrip("m")) / (1000 if value.endswith("m") else 1) <= MAX_CPUS
    ):
        return value
    return None


_MEMORY_FACTORS = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "P": 1000**5,
    "E": 1000**6,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
}


def _memory_bytes(text):
    """Bytes of a memory amount :func:`_memory` accepted (``"64Mi"`` -> 67108864)."""
    number = re.match(r"[0-9.]+", text).group(0)
    # exact decimal arithmetic: a float rounds "0.1Gi" and overflows on long numbers
    return int(Decimal(number) * _MEMORY_FACTORS[text[len(number) :]])


def _memory(value):
    """``value`` when it is a memory amount of 1 byte to MAX_MEMORY_BYTES, else None."""
    if _is_int(value):
        if not 0 < value <= MAX_MEMORY_BYTES:
            return None
        value = str(value)
    if (
        isinstance(value, str)
        and len(value) <= _AMOUNT_MAX_CHARS
        and _MEMORY_RE.fullmatch(value)
        and 0 < _memory_bytes(value) <= MAX_MEMORY_BYTES
    ):
        return value
    return None
