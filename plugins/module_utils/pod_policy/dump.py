# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rendered Pod as YAML text (:func:`dump_pod`).

Podman reads this text with go-yaml, which resolves plain scalars by YAML 1.1 rules (``y``,
``off``, ``017``, ``1:30``, ``1_000`` are not strings there), while other readers use YAML
1.2 rules.  A quoted scalar is a string under every rule set, so every string *value* is
emitted double-quoted (escapes keep it on one line, whatever it holds).  Mapping keys stay
plain when they are a letter followed by letters and digits and not one of the words YAML
1.1 reads as a boolean or null (the engine's field names); any other key (a tenant's label)
is double-quoted too.  Integers and booleans are the engine's own and plain."""

import re

import yaml

# Events straight to the emitter: no representer, serializer or resolver runs, so nothing
# decides a style but this module.
_PyDumper = yaml.SafeDumper
_Dumper = getattr(yaml, "CSafeDumper", _PyDumper)  # libyaml's emitter: same bytes, faster

# No line is ever folded: a document holds at most MAX_DOCUMENT_BYTES (env files add at most
# 64 KiB each), and an escape is at most ten characters long.
_WIDTH = 1 << 30
_QUOTED = (False, True)  # (plain implicit, quoted implicit): untagged, never plain
_PLAIN = (True, False)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
# Every letter-only word a YAML 1.1 or 1.2 reader resolves to something else than a string
# (go-yaml's table, compared case-insensitively to be safe).
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null"))
_FLOAT = yaml.representer.SafeRepresenter().represent_float


def _plain_key(key):
    return _PLAIN_KEY_RE.fullmatch(key) is not None and key.lower() not in _YAML_WORDS


def _events(data, out, key=False):
    if isinstance(data, str):
        if key and _plain_key(data):
            out.append(yaml.ScalarEvent(None, None, _PLAIN, data))
        else:
            out.append(yaml.ScalarEvent(None, None, _QUOTED, data, style='"'))
    elif isinstance(data, dict):
        out.append(yaml.MappingStartEvent(None, None, True, flow_style=False))
        for name, value in data.items():
            _events(name, out, key=True)
            _events(value, out)
        out.append(yaml.MappingEndEvent())
    elif isinstance(data, (list, tuple)):
        out.append(yaml.SequenceStartEvent(None, None, True, flow_style=False))
        for value in data:
            _events(value, out)
        out.append(yaml.SequenceEndEvent())
    elif data is True or data is False:
        out.append(yaml.ScalarEvent(None, None, _PLAIN, "true" if data else "false"))
    elif data is None:
        out.append(yaml.ScalarEvent(None, None, _PLAIN, "null"))
    elif type(data) is int:
        out.append(yaml.ScalarEvent(None, None, _PLAIN, str(data)))
    elif type(data) is float:
        out.append(yaml.ScalarEvent(None, None, _PLAIN, _FLOAT(data).value))
    else:
        raise TypeError("dump_pod: cannot emit %s" % type(data).__name__)


def dump_pod(pod, _dumper=None):
    """The rendered Pod as deterministic YAML text: block style, keys in the order the engine
    builds them, no anchors, no tags, no folded lines, every string value double-quoted.
    libyaml's emitter is used when present; the unit tests check the output is the same as
    PyYAML's own."""
    events = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)]
    _events(pod, events)
    events += [yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    return yaml.emit(events, Dumper=_dumper or _Dumper, allow_unicode=True, width=_WIDTH)
