# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry logins: the tenant's ``auth-<POD>-registry.yaml`` merged with the provider's.

The tenant's file maps a registry to a login::

    registry.example.com:
      user: myreaduser
      password: some_password

The provider's logins come from the inventory as podman's own ``auth.json`` (root-owned,
outside the tenant's tree). :func:`merged_auth` gives the ``auth.json`` podman uses: the
tenant's logins, then the provider's, the provider's winning for the same registry.
"""

import base64
import json

from .messages import PodSpecError, _key, _kind, _Report, _show
from .policy import _REGISTRY_RE
from .yamlsafe import _load_yaml

# A registry as podman's auth.json names it (host, optional :port and /path): the same
# pattern as the policy's allowed_registries.
_MAX_REGISTRIES = 32
_MAX_FIELD = 4096


def _login_text(rep, path, value):
    """A user or password: one line of text. Not values._text, whose hint for a number
    ("quote it: ...") would show a password in a message."""
    if not isinstance(value, str):
        rep.error(path, "must be text, got %s" % _kind(value))
        return None
    if not value:
        rep.error(path, "must not be empty")
        return None
    if len(value) > _MAX_FIELD:
        rep.error(path, "longer than %d characters" % _MAX_FIELD)
        return None
    if any(not c.isprintable() for c in value):
        rep.error(path, "must be one line of printable characters")
        return None
    return value


def _check_login(rep, registry_path, path, registry, login):
    """``(user, password)`` of one login for ``registry`` when both are valid, else None;
    the problems go to ``rep``: the registry's at ``registry_path``, the login's fields
    below ``path``. The tenant's file and the provider's inventory entry (the hosting
    role's preflight) are checked by this one rule; a password is never shown."""
    if not isinstance(registry, str) or not _REGISTRY_RE.fullmatch(registry):
        rep.error(
            registry_path,
            "%s is not a registry (a host name in lowercase, with an optional :port "
            "and /path, such as registry.example.com)" % _show(registry),
        )
        return None
    if not isinstance(login, dict):
        rep.error(path, "must be a mapping with user and password, got %s" % _kind(login))
        return None
    for unknown in sorted(set(map(str, login)) - {"user", "password"}):
        rep.error(_key(path, unknown), "unknown field (a login has user and password)")
    fields = []
    for field in ("user", "password"):
        if login.get(field) is None:
            rep.error(_key(path, field), "required")
            fields.append(None)
            continue
        fields.append(_login_text(rep, _key(path, field), login[field]))
    user, password = fields
    if user is not None and ":" in user:
        rep.error(_key(path, "user"), "must not contain ':'")
        user = None
    if user is None or password is None:
        return None
    return user, password


def login_errors(registry_path, path, registry, login):
    """The problems of one login, as lines (_check_login): for a login that is not read
    from a file, such as the provider's entry of the inventory."""
    rep = _Report()
    _check_login(rep, registry_path, path, registry, login)
    return rep.errors


def load_registry_logins(data, what):
    """The tenant's logins, ``{registry: (user, password)}``, from the text (or bytes) of
    their file; a file of comments only has none. Raises PodSpecError naming each field
    (``what`` names the file); a password is never part of a message."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    if isinstance(text, str) and all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        return {}  # the seeded file: comments only
    document = _load_yaml(data, what)
    if document is None:
        return {}
    rep = _Report()
    if not isinstance(document, dict):
        raise PodSpecError(
            [
                "%s: must map each registry to its login (registry.example.com: {user: ..., "
                "password: ...}), got %s" % (what, _kind(document))
            ]
        )
    if len(document) > _MAX_REGISTRIES:
        raise PodSpecError(["%s: more than %d registries" % (what, _MAX_REGISTRIES)])
    logins = {}
    for registry, login in document.items():
        path = _key("", str(registry))
        checked = _check_login(rep, path, path, registry, login)
        if checked is not None:
            logins[registry] = checked
    if rep.errors:
        raise PodSpecError(["%s: %s" % (what, line) for line in rep.errors])
    return logins


def provider_auths(text):
    """The ``auths`` of the provider's auth.json (text); a missing file is ``None``/empty.
    Raises ValueError when it is not podman's format."""
    if not text:
        return {}
    data = json.loads(text)
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise ValueError("not an auth.json: no auths mapping")
    return auths


def merged_auth(logins, provider):
    """(auth.json data, warnings): the tenant's ``logins`` (load_registry_logins) and the
    provider's ``auths`` (provider_auths); the provider's entry wins for a registry both
    name, with a warning that shows no secret."""
    auths = {}
    warnings = []
    for registry, (user, password) in sorted(logins.items()):
        if registry in provider:
            warnings.append(
                "%s: your provider keeps a login for this registry; theirs is used" % registry
            )
            continue
        token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
        auths[registry] = {"auth": token}
    for registry, entry in provider.items():
        auths[registry] = entry
    return {"auths": auths}, warnings


def auth_json_text(data):
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
