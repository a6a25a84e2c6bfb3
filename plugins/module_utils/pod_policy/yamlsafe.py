# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe YAML loading: exactly one document of plain data, refused when it is a YAML bomb.

:func:`_load_yaml` builds Python data straight from the parser's event stream (libyaml's
when present, else PyYAML's pure-Python one: ``_READER``); no constructor ever runs for a
tag other than the plain scalar ones."""

import yaml
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from .constants import MAX_ALIASES, MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES
from .messages import PodSpecError, _index, _key, _kind, _one_line, _Report, _show


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
