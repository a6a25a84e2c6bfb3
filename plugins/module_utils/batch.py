# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module call for many hostings: every item is handled on its own, an item that
fails is reported under its name and the others go on.

No Ansible import: the modules ``paths`` (O(groups)), ``subid`` (O(users)) and
``pod_spec`` (O(renders)) run their items through ``run_batch`` and decide themselves
whether the call fails (``paths`` and ``subid`` when every item failed, ``pod_spec``
never); the unit tests call it directly.
"""

import collections


class BatchError(Exception):
    """A batch that cannot run at all."""


class Batch(collections.namedtuple("Batch", ["results", "failures"])):
    """``results``: {name: what the item returned, or its failure's entry}, in the order
    of the items; ``failures``: {name: message} of the items that failed, in that order."""

    @property
    def changed(self):
        """True when an item's result says ``changed``."""
        return any(result.get("changed") for result in self.results.values())

    @property
    def all_failed(self):
        """True when there were items and every one failed."""
        return bool(self.results) and len(self.failures) == len(self.results)


def failed_entry(_item, exc):
    """The default entry of a failed item: not changed, failed, its message."""
    return {"changed": False, "failed": True, "msg": str(exc)}


def run_batch(items, one, errors, option, failure=failed_entry, key="name"):
    """``one(item)`` for every item of ``items`` (dicts named by ``item[key]``, unique).

    An exception of the type(s) ``errors`` fails that item only: its entry in the results
    is ``failure(item, exc)``, a dict with the message under ``msg``; any other exception
    goes through. Raises BatchError, before any item runs, when names repeat; the message
    names the module's ``option``. Returns a Batch.
    """
    names = [item[key] for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BatchError(f"{option}: duplicate names: {', '.join(duplicates)}")
    results = {}
    failures = {}
    for item in items:
        name = item[key]
        try:
            results[name] = one(item)
        except errors as exc:
            results[name] = failure(item, exc)
            failures[name] = results[name]["msg"]
    return Batch(results, failures)


def summary(prefix, failures):
    """``prefix`` and every failure as ``name: message``, separated by ``; ``."""
    return prefix + "; ".join(f"{name}: {msg}" for name, msg in failures.items())
