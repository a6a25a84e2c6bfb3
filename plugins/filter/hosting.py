# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that hand the hosting and ingress models (plugins/module_utils/hosting_model.py,
ingress_model.py) to the roles.

The computing is done there, in plain Python with unit tests; these filters only adapt
Ansible's data to it (plain dicts and lists in, plain dicts and lists out).
"""

from pathlib import Path

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_checks as hc
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm
from ansible_collections.webhosting.pods.plugins.module_utils import ingress_model as im
from ansible_collections.webhosting.pods.plugins.module_utils import inventory_checks as ic


def _plain(value):
    """Ansible's tagged or lazy containers as plain dicts, lists and scalars."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        # an exact str: ansible-core < 2.19's AnsibleUnsafeText keeps its type through str()
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


# The roles' argument specs are the one list of the variables the collection knows.
ROLES = Path(__file__).resolve().parents[2] / "roles"


def role_variables():
    """Every option of every role's argument specs (all entry points)."""
    names = set()
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text(encoding="utf-8"))["argument_specs"]
        for entry in specs.values():
            names.update(entry.get("options") or {})
    return names


def webhosting_variable_errors(names):
    """Problems of the inventory's variable names (inventory_checks.variable_errors)."""
    return ic.variable_errors(_plain(list(names)), role_variables())


def hosting_plan(hostings, settings, limit=None):
    hostings, settings = _plain(hostings), _plain(settings)
    try:
        return hm.plan(hostings, settings, _plain(limit) or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"hosting_plan: {exc!r}") from exc


def hosting_published(hostings, settings):
    settings = _plain(settings)
    return {h["name"]: hm.published(hm.layout(h, settings)) for h in _plain(hostings)}


def hosting_preflight(hostings, settings, getent, limit=None):
    getent = _plain(getent)
    return hc.preflight_errors(
        _plain(hostings),
        _plain(settings),
        getent.get("getent_passwd") or {},
        getent.get("getent_group") or {},
        _plain(limit) or [],
    )


def hosting_renders(plan, files):
    return hm.renders(_plain(plan), _plain(files))


def hosting_limits_changed(plan, files):
    return hm.limits_changed(_plain(plan), _plain(files))


def hosting_todo(plan, run):
    plan, run = _plain(plan), _plain(run)
    todo = {}
    for name, model in plan["models"].items():
        reasons = hc.todo_reasons(model, run)
        if reasons:
            todo[name] = reasons
    return todo


def hosting_start_inputs_changed(model, actions):
    return hc.changed_start_inputs(_plain(model), _plain(actions))


def hosting_bringup(plan, todo, run):
    return hc.bringup_items(_plain(plan), _plain(todo), _plain(run))


def ingress_plan(hostings, settings, published, limit=None):
    try:
        return im.plan(
            _plain(hostings), _plain(settings), _plain(published) or {}, _plain(limit) or []
        )
    except hm.HostingError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def ingress_servers(plan, certificates):
    plan, certificates = _plain(plan), _plain(certificates)
    return [im.server_group(plan["models"][name], certificates) for name in plan["present"]]


def ingress_todo(plan, settings, run):
    plan, settings, run = _plain(plan), _plain(settings), _plain(run)
    todo = {}
    for name, model in plan["models"].items():
        reasons = im.todo_reasons(model, settings, run)
        if reasons:
            todo[name] = reasons
    return todo


def ingress_batch(plan, settings, todo, run):
    return im.batch(_plain(plan), _plain(settings), _plain(todo), _plain(run))


def ingress_batch_servers(plan, names, issued):
    return im.batch_servers(_plain(plan), _plain(names), _plain(issued))


def ingress_move_paths(plan, name, settings):
    plan = _plain(plan)
    return im.move_paths(plan["models"][name], _plain(settings))


class FilterModule:
    def filters(self):
        return {
            "hosting_plan": hosting_plan,
            "hosting_preflight": hosting_preflight,
            "hosting_published": hosting_published,
            "hosting_renders": hosting_renders,
            "hosting_todo": hosting_todo,
            "hosting_bringup": hosting_bringup,
            "hosting_start_inputs_changed": hosting_start_inputs_changed,
            "hosting_limits_changed": hosting_limits_changed,
            "ingress_plan": ingress_plan,
            "ingress_servers": ingress_servers,
            "ingress_batch": ingress_batch,
            "ingress_move_paths": ingress_move_paths,
            "ingress_batch_servers": ingress_batch_servers,
            "ingress_todo": ingress_todo,
            "webhosting_variable_errors": webhosting_variable_errors,
        }
