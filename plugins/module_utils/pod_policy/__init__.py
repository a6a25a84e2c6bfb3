# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy engine for tenant pod specs (webhosting.pods).

A tenant writes a Kubernetes ``Pod`` in YAML; the hosting's system policy decides what of it
runs and how.  :func:`render_pod` turns the tenant's text into a hardened Pod (what rootless
podman runs) plus warnings, or raises :class:`PodSpecError` carrying *every* error at once.

This file is deliberately self-contained: Python 3.9+, the standard library and PyYAML only,
no Ansible import.  It is used by the ``webhosting.pods.pod_spec`` module, by ``bin/userpod``
and is installed alone on pod hosts as ``/usr/local/lib/webhosting-pods/pod_policy.py``.

Every error and warning is one line ``FIELD.PATH: problem``, for example
``spec.volumes[1].hostPath.path: /data/x does not exist in the hosting``.

The rules are documented for tenants in ``docs/pod-policy.md`` and the policy keys for
administrators in ``docs/system-policy.md``.
"""

import copy
import ipaddress
import os
import re
import stat

import yaml
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

__all__ = [
    "PodSpecError",
    "RenderResult",
    "load_policy",
    "render_pod",
    "dump_pod",
    "MAX_DOCUMENT_BYTES",
]

# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------
MAX_DOCUMENT_BYTES = 256 * 1024  # a pod spec or a policy file
MAX_ALIASES = 100  # YAML aliases (*name) in one document
MAX_NODES = 20000  # YAML nodes once every alias is expanded (the YAML-bomb guard)
MAX_DEPTH = 40  # nesting depth, aliases expanded
MAX_ENV_FILE_BYTES = 64 * 1024
MAX_CONTAINERS_LIMIT = 100  # upper bound for the policy's max_containers
DEFAULT_MAX_CONTAINERS = 10
MAX_ID = 4294967294  # largest uid/gid

NETWORK_MODES = ("default", "none", "pasta", "slirp4netns")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
RESERVED_LABEL_PREFIXES = ("io.podman.", "io.containers.")

# --------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*", re.ASCII)
_PORT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?", re.ASCII)
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", re.ASCII)
_LABEL_PREFIX_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII
)
_CPU_RE = re.compile(r"([0-9]+(\.[0-9]{1,3})?|[0-9]+m)", re.ASCII)
_MEMORY_RE = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?", re.ASCII)
_EXPOSED_RE = re.compile(r"([0-9]{1,5})/(tcp|udp|sctp)", re.ASCII | re.IGNORECASE)
_REGISTRY_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-]+[a-z0-9]+)*)*",
    re.ASCII,
)
_SIMPLE_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*", re.ASCII)

# Image references, after github.com/distribution/reference.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_RE = re.compile(
    r"(?:(?P<domain>" + _DOMAIN + r")/)?"
    r"(?P<path>" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(?P<tag>" + _TAG + r"))?"
    r"(?:@(?P<digest>" + _DIGEST + r"))?",
    re.ASCII,
)
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------
class PodSpecError(Exception):
    """Invalid input.  ``errors`` lists every problem, one ``field.path: problem`` line each;
    ``warnings`` holds the warnings found on the way (they are not errors)."""

    def __init__(self, errors, warnings=None):
        if isinstance(errors, str):
            errors = [errors]
        self.errors = list(errors)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(self.errors))


class RenderResult:
    """What :func:`render_pod` returns: ``pod`` (the hardened Pod, plain data), ``warnings``
    (list of ``field.path: message`` lines) and ``env_files`` (env files merged in)."""

    __slots__ = ("pod", "warnings", "env_files")

    def __init__(self, pod, warnings, env_files=None):
        self.pod = pod
        self.warnings = warnings
        self.env_files = list(env_files or [])

    def __repr__(self):
        return "RenderResult(pod=%r, warnings=%r)" % (self.pod, self.warnings)


# --------------------------------------------------------------------------------------------
# Message helpers
# --------------------------------------------------------------------------------------------
def _escape(char):
    code = ord(char)
    if code < 0x100:
        return "\\x%02x" % code
    if code < 0x10000:
        return "\\u%04x" % code
    return "\\U%08x" % code


def _one_line(text):
    """Every message is exactly one printable line, whatever the tenant wrote."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a " + type(value).__name__


def _show(value, limit=60):
    """A tenant value quoted for a message (shortened; escaped later by _one_line)."""
    if isinstance(value, str):
        if len(value) > limit:
            value = value[:limit] + "..."
        return '"' + value + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return _kind(value)


def _key(path, key):
    """Path of ``key`` inside the mapping at ``path``: ``spec.containers`` or
    ``metadata.labels["app.kubernetes.io/name"]``."""
    if isinstance(key, str) and _SIMPLE_KEY_RE.fullmatch(key):
        return path + "." + key if path else key
    shown = '"%s"' % key[:60] if isinstance(key, str) else _show(key)
    return "%s[%s]" % (path, shown) if path else "[%s]" % shown


def _index(path, i):
    return "%s[%d]" % (path, i)


class _Report:
    __slots__ = ("errors", "warnings")

    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, path, message):
        self.errors.append(_one_line("%s: %s" % (path, message)))

    def warn(self, path, message):
        self.warnings.append(_one_line("%s: %s" % (path, message)))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Safe YAML loading
# --------------------------------------------------------------------------------------------
class _Refused(Exception):
    """The document is refused outright (bomb, too deep, ...)."""

    def __init__(self, message, mark=None):
        super().__init__(message)
        self.message = message
        self.mark = mark


def _resolvers_without(*tags):
    return {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in tags]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class _PlainResolver(Resolver):
    # Plain scalars never become dates (2024-01-01 stays a string) and "=" is a string.
    yaml_implicit_resolvers = _resolvers_without(
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"
    )


class _PyParserBase(Reader, Scanner, Parser):
    """PyYAML's pure-Python event parser (hosts without libyaml; same events, slower)."""

    def __init__(self, text):
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


try:  # libyaml's event parser when present: several times faster, same events
    from yaml.cyaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on the host
    _CParser = None

if _CParser is not None:

    class _ParserBase(_CParser):
        def __init__(self, text):
            _CParser.__init__(self, text)

else:  # pragma: no cover - depends on the host
    _ParserBase = _PyParserBase


class _EventReader(_ParserBase, _PlainResolver):
    """A YAML event parser plus the scalar resolver; objects are built by _build."""

    def __init__(self, text):
        _ParserBase.__init__(self, text)
        _PlainResolver.__init__(self)


class _PyEventReader(_PyParserBase, _PlainResolver):
    """The pure-Python reader, always available (the tests run both)."""

    def __init__(self, text):
        _PyParserBase.__init__(self, text)
        _PlainResolver.__init__(self)


_READER = _EventReader


_TAG_PREFIX = "tag:yaml.org,2002:"
_STR_TAG = _TAG_PREFIX + "str"
_SEQ_TAG = _TAG_PREFIX + "seq"
_MAP_TAG = _TAG_PREFIX + "map"
_MERGE_TAG = _TAG_PREFIX + "merge"
# Scalar tags a document may carry (collections: only seq and map).  Anything else
# (!!python/object, !!binary, !!set, !!timestamp, custom !tags) is an error, and no
# constructor ever runs for it.
_SCALAR_TAGS = frozenset(
    _TAG_PREFIX + name for name in ("str", "int", "float", "bool", "null", "merge")
)
_CONSTRUCTOR = SafeConstructor()
_SEQ, _MAP = 0, 1  # frame kinds
_MERGE = object()  # the "<<" key
_SKIP = object()  # a refused key: its value is dropped
_SCALAR_KEY_TYPES = (str, int, float, bool, type(None))
_RESOLVED = {}  # plain scalar -> implicit tag (a small cache: keys and common values repeat)
_ScalarEvent = yaml.ScalarEvent
_INT_TAG = _TAG_PREFIX + "int"
_RESOLVER_FIRST_CHARS = frozenset(_PlainResolver.yaml_implicit_resolvers)


def _mark(mark):
    if mark is None:
        return ""
    return "line %d, column %d: " % (mark.line + 1, mark.column + 1)


def _show_tag(tag):
    if tag.startswith(_TAG_PREFIX):
        tag = "!!" + tag[len(_TAG_PREFIX) :]
    return tag[:80]


def _stack_path(stack, prefix, upto=None):
    path = prefix
    for frame in stack[:upto]:
        if frame[0] is _SEQ:
            path = _index(path, len(frame[1]))
        elif frame[7]:
            key = frame[6]
            path = _key(path, "<<" if key is _MERGE else "?" if key is _SKIP else key)
        else:
            path += "[?]"
    return path


def _scalar(reader, event, stack, prefix, what, rep):
    """Construct one scalar; unsupported tags are errors (never constructors)."""
    tag = event.tag
    value = event.value
    if tag == "!":  # the non-specific tag: a string
        return value
    if tag is None:
        if not event.implicit[0]:
            return value
        tag = _RESOLVED.get(value)
        if tag is None:
            tag = reader.resolve(yaml.ScalarNode, value, (True, False))
            if len(_RESOLVED) < 4096 and len(value) < 64:
                _RESOLVED[value] = tag
    if tag == _STR_TAG:
        return value
    if tag == _MERGE_TAG:
        return _MERGE
    if tag not in _SCALAR_TAGS:
        rep.error(
            _stack_path(stack, prefix) or what,
            "unsupported YAML tag %s (line %d); only plain YAML data is accepted"
            % (_show_tag(tag), event.start_mark.line + 1),
        )
        return None
    node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark)
    try:
        return _CONSTRUCTOR.construct_object(node)
    except (yaml.YAMLError, ValueError, KeyError, OverflowError):
        rep.error(
            _stack_path(stack, prefix) or what,
            "%s is not a valid %s (line %d)"
            % (_show(value), _show_tag(tag), event.start_mark.line + 1),
        )
        return None


def _merged(frame, stack, prefix, what, rep):
    """Apply ``<<`` merge keys the way YAML 1.1 (and PyYAML) does: explicit keys win, then
    earlier merges in a list."""
    result = {}
    for value, line in frame[8]:
        sources = list(reversed(value)) if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                rep.error(
                    _key(_stack_path(stack, prefix) or what, "<<"),
                    "must be a mapping or a list of mappings (line %d)" % line,
                )
                continue
            result.update(source)
    result.update(frame[1])
    return result


def _build(reader, what, prefix, rep):
    """Build plain Python data from the event stream of exactly one document, iteratively.

    Refuses (``_Refused``) YAML bombs before they grow: more than MAX_ALIASES aliases, more
    than MAX_NODES nodes once aliases are expanded, nesting deeper than MAX_DEPTH (aliases
    included) and recursive aliases.  Unsupported tags, complex keys and duplicate keys are
    reported in ``rep`` with their field path."""
    get_event = reader.get_event
    get_event()  # StreamStartEvent
    event = get_event()
    if isinstance(event, yaml.StreamEndEvent):
        return _EMPTY
    anchors = {}  # name -> (value, weight, depth); None while the node is open
    stack = []  # frames: [kind, obj, anchor, weight, child depth, mark, key, has key, merges]
    aliases = 0
    result = _EMPTY
    resolved = _RESOLVED
    scalar_event = _ScalarEvent
    str_tag = _STR_TAG
    int_tag = _INT_TAG
    resolver_chars = _RESOLVER_FIRST_CHARS
    while True:
        event = get_event()
        kind = type(event)
        if kind is scalar_event:
            value = event.value
            if event.tag is None and event.anchor is None:
                # The common case, inlined: an untagged scalar that is a string (quoted, or
                # plain and known to resolve to a string) or a plain decimal integer.
                if not event.implicit[0]:
                    tag = str_tag
                else:
                    tag = resolved.get(value)
                    if tag is None and value and value[0] not in resolver_chars:
                        tag = str_tag  # no implicit resolver starts with this character
                if tag == int_tag and value.isdigit() and (value[0] != "0" or value == "0"):
                    value = int(value)
                elif tag != str_tag:
                    tag = None
                if tag is not None and stack:
                    frame = stack[-1]
                    frame[3] += 1
                    if frame[3] > MAX_NODES:
                        raise _Refused(
                            "more than %d nodes once aliases are expanded; YAML bombs are "
                            "refused" % MAX_NODES,
                            event.start_mark,
                        )
                    if not frame[4]:
                        frame[4] = 1
                    if frame[0] is _SEQ:
                        frame[1].append(value)
                        continue
                    if frame[7]:  # a value
                        frame[7] = False
                        key = frame[6]
                        if key is _MERGE:
                            frame[8].append((value, event.start_mark.line + 1))
                        elif key is not _SKIP:
                            frame[1][key] = value
                        continue
                    if value not in frame[1]:  # a new key
                        frame[6] = value
                        frame[7] = True
                        continue
                    value = event.value  # a duplicate key: the general path reports it
            value = _scalar(reader, event, stack, prefix, what, rep)
            weight = depth = 1
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1, 1)
        elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise _Refused("nested deeper than %d levels" % MAX_DEPTH, event.start_mark)
            expected = _SEQ_TAG if kind is yaml.SequenceStartEvent else _MAP_TAG
            if event.tag not in (None, "!", expected):
                rep.error(
                    _stack_path(stack, prefix) or what,
                    "unsupported YAML tag %s (line %d); only plain YAML data is accepted"
                    % (_show_tag(event.tag), event.start_mark.line + 1),
                )
            if event.anchor is not None:
                anchors[event.anchor] = None
            if kind is yaml.SequenceStartEvent:
                stack.append([_SEQ, [], event.anchor, 1, 0, event.start_mark])
            else:
                stack.append([_MAP, {}, event.anchor, 1, 0, event.start_mark, None, False, []])
            continue
        elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            frame = stack.pop()
            value = frame[1]
            if frame[0] is _MAP and frame[8]:
                value = _merged(frame, stack, prefix, what, rep)
            weight = frame[3]
            depth = frame[4] + 1
            if frame[2] is not None:
                anchors[frame[2]] = (value, weight, depth)
        elif kind is yaml.AliasEvent:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Refused(
                    "more than %d aliases; YAML bombs are refused" % MAX_ALIASES,
                    event.start_mark,
                )
            if event.anchor not in anchors:
                raise _Refused("undefined alias *%s" % event.anchor[:40], event.start_mark)
            entry = anchors[event.anchor]
            if entry is None:
                raise _Refused(
                    "alias *%s refers to a node that contains it" % event.anchor[:40],
                    event.start_mark,
                )
            value, weight, depth = entry
        elif kind is yaml.DocumentEndEvent:
            break
        else:  # pragma: no cover - the parser only produces the events above
            raise _Refused("unexpected YAML event %s" % kind.__name__, event.start_mark)

        if not stack:
            result = value
            continue
        frame = stack[-1]
        frame[3] += weight
        if frame[3] > MAX_NODES:
            raise _Refused(
                "more than %d nodes once aliases are expanded; YAML bombs are refused" % MAX_NODES,
                event.start_mark,
            )
        if depth > frame[4]:
            frame[4] = depth
            if depth >= MAX_DEPTH:
                raise _Refused("nested deeper than %d levels" % MAX_DEPTH, event.start_mark)
        if frame[0] is _SEQ:
            frame[1].append("<<" if value is _MERGE else value)
        elif not frame[7]:  # a key
            frame[7] = True
            if value is _MERGE:
                frame[6] = _MERGE
            elif not isinstance(value, _SCALAR_KEY_TYPES):
                rep.error(
                    (_stack_path(stack, prefix, -1) or what) + "[?]",
                    "complex mapping keys are not supported (line %d)"
                    % (event.start_mark.line + 1),
                )
                frame[6] = _SKIP
            else:
                if value in frame[1]:
                    rep.error(
                        _key(_stack_path(stack, prefix, -1), value) or what,
                        "duplicate key (line %d)" % (event.start_mark.line + 1),
                    )
                frame[6] = value
        else:  # a value
            frame[7] = False
            key = frame[6]
            if key is _MERGE:
                frame[8].append((value, event.start_mark.line + 1))
            elif key is not _SKIP:
                frame[1][key] = "<<" if value is _MERGE else value
    if not isinstance(get_event(), yaml.StreamEndEvent):
        raise _Refused("more than one YAML document; the file must hold exactly one")
    return "<<" if result is _MERGE else result


_EMPTY = object()


def _load_yaml(data, what, prefix=""):
    """Parse exactly one YAML document safely.  ``what`` names document-level errors
    (``document`` or ``policy``), ``prefix`` starts field paths.  Returns plain Python data;
    raises PodSpecError."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise PodSpecError(["%s: larger than %d bytes" % (what, MAX_DOCUMENT_BYTES)])
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PodSpecError(["%s: not valid UTF-8 text (byte %d)" % (what, exc.start)]) from None
    if not isinstance(data, str):
        raise PodSpecError(["%s: must be YAML text, got %s" % (what, _kind(data))])
    if len(data) > MAX_DOCUMENT_BYTES or len(data.encode("utf-8", "surrogatepass")) > (
        MAX_DOCUMENT_BYTES
    ):
        raise PodSpecError(["%s: larger than %d bytes" % (what, MAX_DOCUMENT_BYTES)])
    if data.startswith("\ufeff"):
        data = data[1:]
    if "\x00" in data:
        raise PodSpecError(["%s: contains a NUL character; is this a text file?" % what])
    rep = _Report()
    reader = None
    try:
        reader = _READER(data)
        result = _build(reader, what, prefix, rep)
    except _Refused as exc:
        raise PodSpecError([_one_line("%s: %s%s" % (what, _mark(exc.mark), exc.message))]) from None
    except yaml.reader.ReaderError as exc:
        character = exc.character
        code = character if isinstance(character, int) else ord(character[:1] or "\0")
        raise PodSpecError(
            [
                "%s: character #x%04x at position %d is not allowed in YAML (%s)"
                % (what, code, exc.position, exc.reason)
            ]
        ) from None
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = "%s (%s)" % (message, exc.context)
        mark = exc.problem_mark or exc.context_mark
        raise PodSpecError([_one_line("%s: %s%s" % (what, _mark(mark), message))]) from None
    except yaml.YAMLError as exc:
        raise PodSpecError([_one_line("%s: not valid YAML: %s" % (what, exc))]) from None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise PodSpecError(
            [_one_line("%s: cannot be read as YAML (%s)" % (what, type(exc).__name__))]
        ) from None
    finally:
        if reader is not None and hasattr(reader, "dispose"):
            reader.dispose()
    if result is _EMPTY:
        raise PodSpecError(["%s: is empty" % what])
    if rep.errors:
        raise PodSpecError(rep.errors)
    return result


# --------------------------------------------------------------------------------------------
# Small validators
# --------------------------------------------------------------------------------------------
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
        if isinstance(value, (bool, int, float)):
            hint = ' (quote it: "%s")' % (
                ("true" if value else "false") if isinstance(value, bool) else value
            )
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
    if isinstance(value, str) and _CPU_RE.fullmatch(value) and float(value.rstrip("m")) > 0:
        return value
    return None


def _memory(value):
    if _is_int(value):
        value = str(value)
    if isinstance(value, str) and _MEMORY_RE.fullmatch(value):
        number = re.match(r"[0-9.]+", value).group(0)
        if float(number) > 0:
            return value
    return None


# --------------------------------------------------------------------------------------------
# The system policy
# --------------------------------------------------------------------------------------------
_POLICY_KEYS = (
    "name",
    "volumes_base_dir",
    "volumes_containers_gid_share",
    "volumes_containers_gid",
    "container_env_dir",
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
)
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
            rep.error(_key("policy", key), "unknown key")

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
                    rep.error(_key(path, key), "unknown key")
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
                rep.error(path, "unknown key")
    policy["resources"] = resources

    value = data.get("max_containers", DEFAULT_MAX_CONTAINERS)
    if _is_int(value) and 1 <= value <= MAX_CONTAINERS_LIMIT:
        policy["max_containers"] = value
    else:
        rep.error(
            "policy.max_containers",
            "must be an integer between 1 and %d, got %s" % (MAX_CONTAINERS_LIMIT, _show(value)),
        )
        policy["max_containers"] = DEFAULT_MAX_CONTAINERS

    if rep.errors:
        raise PodSpecError(rep.errors)
    global _LAST_POLICY
    _LAST_POLICY = (policy, copy.deepcopy(policy))
    return policy


_LAST_POLICY = (None, None)  # (the last policy load_policy returned, a copy to detect changes)


def _policy_socket_ports(rep, value):
    ports = {}
    if value is None:
        return ports
    if _mapping(rep, "policy.socket_ports", value) is None:
        return ports
    for raw, entry in value.items():
        path = _key("policy.socket_ports", raw)
        port = raw
        if isinstance(raw, str) and raw.isascii() and raw.isdigit():
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
                rep.error(_key(path, key), "unknown key")
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


# --------------------------------------------------------------------------------------------
# File-system checks (hostPath and env files)
# --------------------------------------------------------------------------------------------
def _resolve_host_dir(base, tenant_path):
    """Resolve a tenant hostPath below ``base`` without following any symlink.

    Returns (absolute path, None) or (None, problem)."""
    parts = [part for part in tenant_path.split("/") if part not in ("", ".")]
    shown = "/" + "/".join(parts)
    if ".." in parts:
        return None, '%s must not contain ".."' % _show(tenant_path)
    try:
        if not stat.S_ISDIR(os.stat(base).st_mode):
            return None, "%s does not exist in the hosting" % shown
    except OSError:
        return None, "%s does not exist in the hosting" % shown
    current = base
    walked = ""
    for part in parts:
        current = os.path.join(current, part)
        walked += "/" + part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None, "%s does not exist in the hosting" % shown
        except PermissionError:
            return None, "%s cannot be checked (permission denied at %s)" % (shown, walked)
        except (OSError, ValueError) as exc:
            return None, "%s cannot be checked (%s)" % (
                shown,
                getattr(exc, "strerror", None) or type(exc).__name__,
            )
        if stat.S_ISLNK(info.st_mode):
            return None, "%s goes through the symlink %s; symlinks are not followed" % (
                shown,
                walked,
            )
        if not stat.S_ISDIR(info.st_mode):
            if walked == shown:
                return None, "%s is not a directory" % shown
            return None, "%s: %s is not a directory" % (shown, walked)
    resolved = os.path.normpath(current)
    if os.path.commonpath([base, resolved]) != base:  # pragma: no cover - defence in depth
        return None, "%s is outside the hosting" % shown
    return resolved, None


def _read_env_file(path, rep):
    """Read ``path`` when present: a regular file, not a symlink, opened without following
    links.  Returns a list of (name, value, line number) or None when there is no file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    if stat.S_ISLNK(info.st_mode):
        rep.error(path, "is a symlink; env files must be regular files")
        return []
    if not stat.S_ISREG(info.st_mode):
        rep.error(path, "is not a regular file")
        return []
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            info.st_dev,
            info.st_ino,
        ):
            rep.error(path, "changed while being read")
            return []
        chunks = []
        size = 0
        while size <= MAX_ENV_FILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        rep.error(path, "cannot be read (%s)" % (exc.strerror or type(exc).__name__))
        return []
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_ENV_FILE_BYTES:
        rep.error(path, "larger than %d bytes" % MAX_ENV_FILE_BYTES)
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        rep.error(path, "not valid UTF-8 text (byte %d)" % exc.start)
        return []
    return _parse_env_text(text, path, rep)


def _parse_env_text(text, path, rep):
    entries = []
    for number, line in enumerate(text.split("\n"), 1):
        where = "%s:%d" % (path, number)
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\x00" in line:
            rep.error(where, "contains a NUL character")
            continue
        if "=" not in line:
            rep.error(where, "expected KEY=VALUE")
            continue
        name, value = line.split("=", 1)
        name = name.strip()
        if not _ENV_NAME_RE.fullmatch(name):
            rep.error(where, "%s is not a valid variable name" % _show(name))
            continue
        if "\r" in value:
            rep.error(where, "contains a carriage return")
            continue
        entries.append((name, value, number))
    return entries


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
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
)
_SECURITY_KEYS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "privileged",
    "readOnlyRootFilesystem",
    "capabilities",
    "seLinuxOptions",
)
_POD_SECURITY_KEYS = ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions")
_SYSTEMD_TMPFS = (("run", "/run"), ("lock", "/run/lock"), ("tmp", "/tmp"))


def _run_as(rep, path, value, what):
    """runAsUser/runAsGroup given by the tenant: an integer, never 0."""
    if not _is_int(value):
        rep.error(path, "must be an integer, got %s" % _show(value))
        return None
    if value == 0:
        rep.error(path, "0 (%s) is not allowed" % what)
        return None
    if not 1 <= value <= MAX_ID:
        rep.error(path, "must be between 1 and %d, got %s" % (MAX_ID, value))
        return None
    return value


def _security_context(rep, path, context, allowed_keys, read_only_allowed_off=False):
    """Validate a tenant securityContext; returns the (runAsUser, runAsGroup, readOnlyRoot)
    it asks for.  Requests for more privilege are errors; the rest is ignored."""
    run_as_user = run_as_group = read_only = None
    _ignore_unknown(rep, path, context, allowed_keys)
    for key, value in context.items():
        here = _key(path, key)
        if key == "runAsUser":
            run_as_user = _run_as(rep, here, value, "root")
        elif key == "runAsGroup":
            run_as_group = _run_as(rep, here, value, "root's group")
        elif key == "runAsNonRoot":
            if _boolean(rep, here, value) is False:
                rep.error(here, "false is not allowed; containers never run as root")
        elif key == "allowPrivilegeEscalation" and key in allowed_keys:
            if _boolean(rep, here, value) is True:
                rep.error(here, "true is not allowed")
        elif key == "privileged" and key in allowed_keys:
            if _boolean(rep, here, value) is True:
                rep.error(here, "true is not allowed; containers are never privileged")
        elif key == "readOnlyRootFilesystem" and key in allowed_keys:
            read_only = _boolean(rep, here, value)
            if read_only is False and not read_only_allowed_off:
                rep.error(
                    here,
                    "false is not allowed by the policy for this container; mount an "
                    "emptyDir (medium: Memory) where the program writes",
                )
        elif key == "capabilities" and key in allowed_keys:
            caps = _mapping(rep, here, value, allow_null=True)
            if caps:
                _ignore_unknown(rep, here, caps, ("add", "drop"))
                if "add" in caps and caps["add"] not in (None, []):
                    rep.error(here + ".add", "not allowed; every capability is dropped")
                if "drop" in caps and caps["drop"] is not None:
                    drop = _sequence(rep, here + ".drop", caps["drop"])
                    for i, item in enumerate(drop or ()):
                        _text(rep, _index(here + ".drop", i), item)
        elif key == "seLinuxOptions":
            rep.error(here, "not allowed; SELinux labels are set by the host")
    return run_as_user, run_as_group, read_only


class _Renderer:
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
            rendered_volumes.append(volume)

        result = {"hostname": hostname, "restartPolicy": restart, "containers": containers}
        if rendered_volumes:
            result["volumes"] = rendered_volumes
        return result

    # -- volumes ---------------------------------------------------------------------------
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
            working_dir = _absolute_path(rep, path + ".workingDir", value["workingDir"])
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
        if len(rep.errors) != errors_before:
            return None
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
        registry, image_path, _tag, _digest, normalised = parsed
        allowed = self.policy["allowed_registries"]
        if not _registry_allowed(registry, image_path, allowed):
            rep.error(
                path,
                "%s is not from an allowed registry (%s)" % (_show(text), ", ".join(allowed)),
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

        env_dir = self.policy["container_env_dir"]
        if env_dir is not None and container_name is not None:
            env_path = os.path.join(env_dir, "%s-%s.env" % (self.policy["name"], container_name))
            loaded = _read_env_file(env_path, rep)
            if loaded is not None:
                self.env_files.append(env_path)
                for name, text, number in loaded:
                    if name in origins:
                        rep.warn(
                            _index(path, origins.pop(name)) + ".value",
                            "replaced by %s:%d" % (env_path, number),
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
        seen = set()
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
                mount_path = _absolute_path(rep, here + ".mountPath", item["mountPath"])
                if mount_path is not None and ":" in mount_path:
                    rep.error(here + ".mountPath", "must not contain ':'")
                    mount_path = None
                if mount_path is not None:
                    normalised = os.path.normpath(mount_path)
                    if normalised in seen:
                        rep.error(here + ".mountPath", "%s is mounted twice" % _show(mount_path))
                    seen.add(normalised)
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

    def systemd_mounts(self, i, mounts, volumes):
        """Policy ``systemd: true``: tmpfs on /run, /run/lock and /tmp unless mounted."""
        taken = {os.path.normpath(mount["mountPath"]) for mount in mounts}
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


def render_pod(pod_text, policy, strict=False):
    """Validate the tenant's pod YAML (``str`` or ``bytes``) against ``policy`` (a mapping
    or YAML text, normalised with :func:`load_policy`) and return a :class:`RenderResult`.

    Raises :class:`PodSpecError` with every error; with ``strict`` warnings are errors too."""
    last = _LAST_POLICY
    if not (policy is last[0] and policy == last[1]):
        # A policy load_policy returned and nobody changed since is used as is; anything
        # else is validated and normalised here.
        policy = load_policy(policy)
    doc = _load_yaml(pod_text, "document")
    rep = _Report()
    renderer = _Renderer(policy, rep)
    pod = renderer.render(doc)
    if strict and rep.warnings:
        raise PodSpecError(rep.errors + rep.warnings, rep.warnings)
    if rep.errors or pod is None:
        raise PodSpecError(rep.errors or ["document: invalid"], rep.warnings)
    return RenderResult(pod, rep.warnings, renderer.env_files)


class _PyDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


if hasattr(yaml, "CSafeDumper"):

    class _Dumper(yaml.CSafeDumper):
        _resolved = {}

        def ignore_aliases(self, data):
            return True

        def resolve(self, kind, value, implicit):
            # The emitter asks, for every scalar, what its plain form would mean; the answer
            # only depends on the arguments, and pod specs repeat their scalars.
            if kind is not yaml.ScalarNode:
                return yaml.CSafeDumper.resolve(self, kind, value, implicit)
            key = (value, implicit)
            tag = self._resolved.get(key)
            if tag is None:
                tag = yaml.CSafeDumper.resolve(self, kind, value, implicit)
                if len(self._resolved) < 4096 and len(value) < 64:
                    self._resolved[key] = tag
            return tag

else:  # pragma: no cover - depends on the host
    _Dumper = _PyDumper


_DUMP_OPTIONS = {"allow_unicode": True, "width": 4096, "explicit_start": False}


def _to_node(data):
    """Plain data to YAML nodes, exactly as SafeRepresenter would (without its overhead)."""
    if isinstance(data, str):
        return yaml.ScalarNode(_STR_TAG, data)
    if isinstance(data, dict):
        return yaml.MappingNode(
            _MAP_TAG, [(_to_node(k), _to_node(v)) for k, v in data.items()], flow_style=False
        )
    if isinstance(data, list):
        return yaml.SequenceNode(_SEQ_TAG, [_to_node(v) for v in data], flow_style=False)
    if data is True or data is False:
        return yaml.ScalarNode(_TAG_PREFIX + "bool", "true" if data else "false")
    if data is None:
        return yaml.ScalarNode(_TAG_PREFIX + "null", "null")
    if type(data) is int:
        return yaml.ScalarNode(_TAG_PREFIX + "int", str(data))
    raise TypeError(type(data).__name__)


def dump_pod(pod, _dumper=None):
    """The rendered Pod as deterministic YAML text: what ``yaml.safe_dump(pod,
    sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)`` gives:
    block style, keys in the order the engine builds them, no anchors, no line folding.
    libyaml's emitter is used when present; the unit tests check the output is the same as
    PyYAML's own."""
    dumper = _dumper or _Dumper
    try:
        node = _to_node(pod)
    except TypeError:
        return yaml.dump(
            pod, Dumper=dumper, default_flow_style=False, sort_keys=False, **_DUMP_OPTIONS
        )
    return yaml.serialize(node, Dumper=dumper, **_DUMP_OPTIONS)
