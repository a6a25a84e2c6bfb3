# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tenant's securityContext, of the pod or of a container: no root, no privilege,
no capability, no SELinux label; what it asks for that is allowed is returned."""

from .constants import MAX_ID
from .messages import _index, _key, _show
from .values import _boolean, _ignore_unknown, _is_int, _mapping, _sequence, _text

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
