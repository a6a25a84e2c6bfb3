# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Subordinate id (``/etc/subuid``, ``/etc/subgid``) allocation as pure functions.

No Ansible import: the module ``webhosting.pods.subid`` is a thin shell over this file,
and the unit tests call it directly.

File format (shadow's ``subuid(5)``): one ``OWNER:START:COUNT`` per line, OWNER a user
name or a numeric uid. Blank lines and ``#`` comments are kept as they are.

Allocation rules, in order:

1. The user already owns a range (by name or by uid): it is kept, unchanged, as long as it
   is a single range of at least ``count`` ids that overlaps nobody else's. Anything else
   (several ranges, too small, overlapping) is an error for a human to resolve: moving a
   user's range silently would leave their container storage owned by ids they no longer
   own.
2. The deterministic slot ``base + (uid - uid_min) * count`` when it is inside
   ``[base, max_id]`` and overlaps no other range.
3. Otherwise the lowest free slot at or above ``base``, aligned to ``count``.
"""

import collections
import re

MAX_ID = 4294967294  # (uid_t)-1 is invalid; this is the last usable id
DEFAULT_COUNT = 65536

_OWNER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")

Entry = collections.namedtuple("Entry", ["owner", "start", "count", "lineno"])


class SubidError(Exception):
    """A subordinate id file or request that cannot be handled safely."""


class Allocation(collections.namedtuple("Allocation", ["start", "count", "kept"])):
    """The range a user ends up with; ``kept`` is true when it was already there."""

    @property
    def end(self):
        """The first id after the range."""
        return self.start + self.count


def parse(text, path="subid file"):
    """Return (lines, entries) for the text of a subuid/subgid file.

    ``lines`` are the raw lines without their newline (kept for re-rendering);
    ``entries`` the parsed ranges. Raises SubidError naming the line on bad input.
    """
    lines = text.splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split(":")
        if len(fields) != 3:
            raise SubidError(f"{path} line {number}: expected OWNER:START:COUNT, got {line!r}")
        owner, start, count = fields
        if not _OWNER_RE.match(owner):
            raise SubidError(f"{path} line {number}: invalid owner {owner!r}")
        if not (start.isdigit() and count.isdigit()):
            raise SubidError(
                f"{path} line {number}: START and COUNT must be decimal numbers, got {line!r}"
            )
        entries.append(Entry(owner, int(start), int(count), number))
    return lines, entries


def overlaps(start_a, count_a, start_b, count_b):
    """True when the half-open ranges [a, a+count_a) and [b, b+count_b) share an id."""
    return start_a < start_b + count_b and start_b < start_a + count_a


def owned_by(entries, name, uid):
    """The entries that belong to the user, by name or by numeric uid."""
    keys = {name, str(uid)}
    return [e for e in entries if e.owner in keys]


def _is_free(others, start, count, base, max_id):
    if start < base or start + count - 1 > max_id:
        return False
    return not any(overlaps(start, count, o.start, o.count) for o in others)


def first_free(others, count, base, max_id):
    """The lowest start >= base, aligned to count from base, free in ``others``."""
    candidate = base
    ordered = sorted(others, key=lambda e: e.start)
    while candidate + count - 1 <= max_id:
        blocker = next((o for o in ordered if overlaps(candidate, count, o.start, o.count)), None)
        if blocker is None:
            return candidate
        # jump past the blocking range, then up to the next aligned slot
        past = blocker.start + blocker.count
        candidate = base + -(-(past - base) // count) * count
    raise SubidError(f"no free range of {count} ids between {base} and {max_id}")


def preferred_start(uid, uid_min, base, count):
    """The deterministic slot for a uid, or None when the uid is below uid_min."""
    if uid < uid_min:
        return None
    return base + (uid - uid_min) * count


def allocate(
    entries,
    name,
    uid,
    count=DEFAULT_COUNT,
    base=100000,
    uid_min=1000,
    max_id=MAX_ID,
    path="subid file",
):
    """Decide the range of ``name``/``uid`` given the parsed ``entries`` of one file."""
    if count < 1:
        raise SubidError(f"count must be at least 1, got {count}")
    if base < 1 or base > max_id:
        raise SubidError(f"base {base} is outside 1..{max_id}")
    mine = owned_by(entries, name, uid)
    others = [e for e in entries if e not in mine]
    if mine:
        if len(mine) > 1:
            lines = ", ".join(str(e.lineno) for e in mine)
            raise SubidError(
                f"{path}: user {name} has {len(mine)} ranges (lines {lines}); expected one"
            )
        entry = mine[0]
        clash = [o for o in others if overlaps(entry.start, entry.count, o.start, o.count)]
        if clash:
            last = entry.start + entry.count - 1
            raise SubidError(
                f"{path} line {entry.lineno}: range {entry.start}-{last} of {name} "
                f"overlaps {clash[0].owner}'s range on line {clash[0].lineno}"
            )
        if entry.count < count:
            raise SubidError(
                f"{path} line {entry.lineno}: {name} has {entry.count} ids, {count} are required"
            )
        return Allocation(entry.start, entry.count, True)
    wanted = preferred_start(uid, uid_min, base, count)
    if wanted is not None and _is_free(others, wanted, count, base, max_id):
        return Allocation(wanted, count, False)
    return Allocation(first_free(others, count, base, max_id), count, False)


def render_added(text, name, allocation):
    """The file text with a line for ``name`` appended (text unchanged if kept)."""
    if allocation.kept:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + f"{name}:{allocation.start}:{allocation.count}\n"


def render_removed(text, name, uid, path="subid file"):
    """The file text without the user's lines (by name or uid)."""
    lines, entries = parse(text, path)
    drop = {e.lineno for e in owned_by(entries, name, uid)}
    if not drop:
        return text
    kept = [line for number, line in enumerate(lines, start=1) if number not in drop]
    return "".join(line + "\n" for line in kept)


def plan(text, name, uid, path="subid file", **settings):
    """Return (new_text, allocation) for ensuring ``name`` has a range in one file;
    ``settings`` are those of allocate() (count, base, uid_min, max_id)."""
    _lines, entries = parse(text, path)
    allocation = allocate(entries, name, uid, path=path, **settings)
    return render_added(text, name, allocation), allocation
