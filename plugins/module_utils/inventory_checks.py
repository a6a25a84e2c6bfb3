# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typos in the admin's inventory are errors before anything changes.

- ``key_errors``: the keys of a ``webhosting_hostings`` item, at every level the
  collection reads (``ingress``, ``sftp``, ``limits``, ``registry``, ``cron_jobs[]``,
  ``ingress.static_paths[]``), against what the models know; an unknown key names its path
  and the closest known key. ``policy`` is the engine's (``load_policy``), ``pod`` the
  tenant's engine's, ``env_files`` free (container names, then variable names).
- ``variable_errors``: the inventory's variables against the roles' argument specs. A name
  with the collection's own prefixes (``webhosting_``, ``hosting_``) that no role knows is an
  error; one with the generic role prefixes (``host_``, ``ingress_``), which a provider's
  inventory may use for its own things, only when it is a near miss of a known name.

Pure Python over plain data; plugins/filter/hosting.py hands them to the roles' preflight.
"""

from ansible_collections.webhosting.pods.plugins.module_utils import ingress_model as im
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import messages

# What a hosting item may hold. A tuple: a mapping with these keys (values not walked
# here); a dict: a mapping whose values are checked by their own schema; a list of one
# schema: a list of such items; None: not walked here (checked by its own code).
HOSTING_SCHEMA = {
    "name": None,
    "uid": None,
    "gid": None,
    "state": None,
    "domains": None,
    "socket_ports": None,
    "pod": None,  # the tenant's engine (render_pod)
    "env_files": None,  # container names, then variable names (hosting_checks)
    "policy": None,  # the engine's load_policy, with its own unknown-key errors
    "registry": ("server", "user", "password"),
    "sftp": None,  # hosting_checks._sftp_errors, with unknown_key
    "container_storage_max": None,
    "limits": None,  # hosting_checks.limit_errors (also the role's hosting_limits)
    "cron_jobs": [("name", "container", "command", "schedule")],
    "ingress": dict(
        {key: None for key in im.HOSTING_INGRESS_KEYS},
        static_paths=[("prefix", "dir")],
    ),
}

# The collection's own variables that are no role's option: the playbooks read them and
# the roles publish some (set_fact).
SITE_VARIABLES = (
    "webhosting_hostings",
    "webhosting_hosting_limit",
    "webhosting_hostings_base_dir",
    "webhosting_policy_defaults",
    "hosting_failed_hostings",
    "ingress_failed_hostings",
    "hosting_published_paths",
    "hosting_orphans",
)
OWN_PREFIXES = ("webhosting_", "hosting_")
SHARED_PREFIXES = ("host_", "ingress_")
# How far a shared-prefix name may be from a known one to count as its typo.
NEAR_MISS = 2


# The inventory's keys are few and its names long: a looser match than the engine's.
CUTOFF = 0.6


def unknown_key(at, key, known):
    """``AT.KEY: unknown key`` with the closest known key, or the known ones (the engine's
    wording, pod_policy.messages)."""
    return f"{at}.{key}: " + messages.unknown_key(key, known, cutoff=CUTOFF, list_known=True)


def key_errors(at, value, schema=HOSTING_SCHEMA):
    """Unknown keys in ``value`` (a hosting item by default), one line each naming the
    path. Values of the wrong type are left to the checks that know their meaning."""
    errors = []
    if isinstance(schema, list):
        if isinstance(value, list):
            for index, item in enumerate(value):
                errors += key_errors(f"{at}[{index}]", item, schema[0])
        return errors
    if schema is None or not isinstance(value, dict):
        return errors
    for key, item in value.items():
        if key not in schema:
            errors.append(unknown_key(at, key, [str(k) for k in schema]))
        elif isinstance(schema, dict):
            errors += key_errors(f"{at}.{key}", item, schema[key])
    return errors


def distance(first, second):
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        current = [i]
        for j, b in enumerate(second, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def variable_errors(names, known):
    """Problems of the inventory's variable ``names`` against the ``known`` ones, sorted."""
    known = set(known) | set(SITE_VARIABLES)
    errors = []
    for name in sorted({str(n) for n in names}):
        if name in known:
            continue
        if name.startswith(OWN_PREFIXES):
            close = messages.closest(name, known, CUTOFF)
            hint = f" (did you mean {close}?)" if close else ""
            errors.append(f"{name}: no role of webhosting.pods knows this variable{hint}")
        elif name.startswith(SHARED_PREFIXES):
            near = sorted(
                (distance(name, other), other)
                for other in known
                if other.startswith(SHARED_PREFIXES) and distance(name, other) <= NEAR_MISS
            )
            if near:
                errors.append(
                    f"{name}: no role of webhosting.pods knows this variable"
                    f" (did you mean {near[0][1]}?)"
                )
    return errors
