# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How problems are reported: :class:`PodSpecError` and the helpers that build its lines.

Every error and warning is one printable line ``FIELD.PATH: problem``; ``_key`` and
``_index`` build the field paths, ``_show`` quotes what the tenant wrote, ``_Report``
collects the lines."""

import difflib
import re

_SIMPLE_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*", re.ASCII)


class PodSpecError(Exception):
    """Invalid input.  ``errors`` lists every problem, one ``field.path: problem`` line each;
    ``warnings`` holds the warnings found on the way (they are not errors)."""

    def __init__(self, errors, warnings=None):
        if isinstance(errors, str):
            errors = [errors]
        self.errors = list(errors)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(self.errors))


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


def _huge(value, limit=60):
    """True for an integer of more than ``limit`` digits: shown by its size only, since
    repr() of one past sys.get_int_max_str_digits() raises ValueError."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit


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
    if _huge(value, limit):
        return "an integer of more than %d digits" % limit
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


def closest(word, known, cutoff=0.75):
    """The name of ``known`` that ``word`` is most likely a typo of, or None."""
    close = difflib.get_close_matches(str(word), sorted(str(k) for k in known), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_key(key, known, cutoff=0.75, list_known=False):
    """The problem of a key that is not among ``known``: ``unknown key``, and ``(did you
    mean NAME?)`` when one is close enough to be a typo of it; with ``list_known``, the
    known keys otherwise."""
    close = closest(key, known, cutoff)
    if close:
        return "unknown key (did you mean %s?)" % close
    if list_known:
        return "unknown key (known: %s)" % ", ".join(sorted(str(k) for k in known))
    return "unknown key"
