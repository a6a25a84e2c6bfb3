# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hosting role's decisions over the whole host: the inventory checks before anything
changes (`preflight_errors`) and why a hosting needs work in a run (`todo_reasons`).

Pure Python over plain data (the inventory, getent tables, the results of the role's
host-wide module calls); plugins/filter/hosting.py hands them to the role.
"""

import re

from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm
from ansible_collections.webhosting.pods.plugins.module_utils import inventory_checks, ssh_keys
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import (
    PodSpecError,
    load_policy,
    login_errors,
)

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _count(values, value):
    return sum(1 for v in values if v == value)


def preflight_errors(hostings, settings, passwd, groups, limit):
    """Every problem of the inventory, one line each, `FIELD: problem`."""
    errors = []
    names = [h.get("name") for h in hostings]
    uids = [hm._int(h.get("uid")) for h in hostings]
    gids = [hm._int(h.get("gid")) for h in hostings]
    all_domains = [d for h in hostings for d in (h.get("domains") or [])]
    for name in hm.limit_list(limit):
        if name not in names:
            errors.append(f"webhosting_hosting_limit: no hosting is named {name}")
    errors += limit_errors("hosting_limits", settings.get("limits"))
    uid_min, uid_max = int(settings["uid_min"]), int(settings["uid_max"])
    for index, h in enumerate(hostings):
        name = h.get("name")
        at = f"webhosting_hostings[{index}] ({name})"
        if not isinstance(name, str) or not hm.NAME_RE.fullmatch(name):
            errors.append(
                f"{at}.name: must be a lowercase user name: a letter, then letters, digits"
                " or '-', at most 32 characters"
            )
        elif _count(names, name) > 1:
            errors.append(f"{at}.name: {name} is used by {_count(names, name)} hostings")
        for key, ids, table, kind in (
            ("uid", uids, passwd, "user"),
            ("gid", gids, groups, "group"),
        ):
            wanted = hm._int(h.get(key))
            if wanted is None or wanted < uid_min or wanted > uid_max:
                errors.append(f"{at}.{key}: {h.get(key)} is outside {uid_min}-{uid_max}")
            if wanted is None:
                continue
            if _count(ids, wanted) > 1:
                errors.append(f"{at}.{key}: {wanted} is used by {_count(ids, wanted)} hostings")
            if name in table and hm._int(table[name][1]) != wanted:
                errors.append(
                    f"{at}.{key}: {kind} {name} already exists on the host"
                    f" with {key} {table[name][1]}"
                )
            for other, entry in table.items():
                if other != name and hm._int(entry[1]) == wanted:
                    errors.append(f"{at}.{key}: {wanted} already belongs to {kind} {other}")
        for i, domain in enumerate(h.get("domains") or []):
            if not isinstance(domain, str) or not hm.DOMAIN_RE.fullmatch(domain):
                errors.append(f"{at}.domains[{i}]: {domain} is not a lowercase domain name")
            elif _count(all_domains, domain) > 1:
                errors.append(
                    f"{at}.domains[{i}]: {domain} is listed {_count(all_domains, domain)} times"
                )
        errors += _port_errors(at, h.get("socket_ports", settings["socket_ports"]))
        if (h.get("ingress") or {}).get("app_socket_ports"):
            errors.append(
                f"{at}.ingress.app_socket_ports: no longer supported: nginx connects only to"
                " sockets outside the tenant's files (the forwarder's); let the app listen on"
                " TCP in the pod (docs/upgrading.md)"
            )
        if "pod" in h and not isinstance(h["pod"], dict):
            errors.append(f"{at}.pod: must be a mapping (a Kubernetes Pod)")
        errors += _env_errors(at, h.get("env_files") or {})
        errors += _registry_errors(at, h, settings)
        errors += _cron_errors(at, h.get("cron_jobs") or [])
        if "container_storage_max" in h and hm.size_bytes(h["container_storage_max"]) is None:
            errors.append(
                f"{at}.container_storage_max: {h['container_storage_max']!r} is not a size"
                " (bytes, or a number with K, M, G or T; 0 for no bound)"
            )
        errors += limit_errors(f"{at}.limits", h.get("limits"))
        errors += _sftp_errors(at, h.get("sftp"))
        errors += inventory_checks.key_errors(at, h)
        layout_keys = [key for key in h.get("policy") or {} if key in hm.LAYOUT_KEYS]
        for key in layout_keys:
            errors.append(
                f"{at}.policy.{key}: is computed from the hosting layout and cannot be set"
            )
        if not layout_keys and isinstance(name, str) and hm.NAME_RE.fullmatch(name):
            errors += _policy_errors(at, h, settings)
    return errors


def _policy_errors(at, h, settings):
    """The hosting's effective policy (webhosting_policy_defaults, its own `policy`, the
    layout) loaded by the engine that will enforce it: what pod_spec would refuse after
    the policy was written, and so stop the pod, is refused here before anything changes."""
    own = h.get("policy")
    if own is not None and not isinstance(own, dict):
        return [f"{at}.policy: must be a mapping of policy keys (docs/system-policy.md)"]
    defaults = settings.get("policy_defaults")
    if defaults is not None and not isinstance(defaults, dict):
        return ["webhosting_policy_defaults: must be a mapping of policy keys"]
    try:
        model = hm.layout(h, settings)
        load_policy(hm.policy(h, settings, model))
    except PodSpecError as exc:
        errors = []
        for line in exc.errors:
            # "policy.network: ..." is the hosting's own key, or else the defaults'
            field = line.split(":", 1)[0]
            top = field[len("policy.") :].split(".", 1)[0].split("[", 1)[0]
            if top in (own or {}):
                errors.append(f"{at}.{line}")
            else:
                rest = line[len("policy") :]
                errors.append(f"webhosting_policy_defaults{rest} (hosting {h['name']})")
        return errors
    except (AttributeError, KeyError, TypeError, ValueError, hm.HostingError):
        return []  # the hosting's other fields are wrong: reported by their own checks
    return []


def limit_errors(at, value):
    """Problems of a `limits` mapping (a hosting's, or the role's hosting_limits)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f"{at}: must be a mapping with tasks_max, memory_max and cpu_weight"]
    errors = []
    for key, item in value.items():
        if key not in hm.LIMIT_KEYS:
            errors.append(inventory_checks.unknown_key(at, key, hm.LIMIT_KEYS))
            continue
        if key != "cpu_weight" and str(item).strip().lower() == "infinity":
            continue
        if key == "tasks_max":
            number = hm._int(item)
            if number is None or not 16 <= number <= 4194304:
                errors.append(
                    f"{at}.tasks_max: {item!r} is not a number of processes between 16 and"
                    " 4194304 (or infinity)"
                )
        elif key == "memory_max":
            size = hm.size_bytes(item)
            if size is None or size < 64 * 1024 * 1024:
                errors.append(
                    f"{at}.memory_max: {item!r} is not a size of at least 64M (bytes, or a"
                    " number with K, M, G or T; or infinity)"
                )
        else:
            number = hm._int(item)
            if number is None or not 1 <= number <= 10000:
                errors.append(f"{at}.cpu_weight: {item!r} is not a weight between 1 and 10000")
    return errors


def _port_errors(at, ports):
    errors = []
    if not ports:
        errors.append(f"{at}.socket_ports: at least one port is needed")
    numbers = [hm._int(p) for p in ports]
    for i, port in enumerate(ports):
        number = hm._int(port)
        if isinstance(port, bool) or not _DIGITS.fullmatch(str(port)) or not 1 <= number <= 65535:
            errors.append(
                f"{at}.socket_ports[{i}]: {port} is not a port number between 1 and 65535"
            )
        elif _count(numbers, number) > 1:
            errors.append(f"{at}.socket_ports[{i}]: {port} is listed twice")
    return errors


def _env_errors(at, env_files):
    errors = []
    for container, env in env_files.items():
        where = f"{at}.env_files.{container}"
        if not hm.LABEL_RE.fullmatch(str(container)):
            errors.append(f"{where}: container names are lowercase letters, digits and '-'")
        if not isinstance(env, dict):
            errors.append(f"{where}: must be a mapping of variables")
            continue
        for key, value in env.items():
            if not hm.ENV_KEY_RE.fullmatch(str(key)):
                errors.append(f"{where}.{key}: not a valid variable name")
            if isinstance(value, (dict, list, tuple)) or "\n" in hm._scalar_text(value):
                errors.append(f"{where}.{key}: the value must be one line of text")
    return errors


def _registry_errors(at, h, settings):
    if "registry" not in h:
        return []
    registry = h["registry"] if isinstance(h["registry"], dict) else {}
    errors = []
    if not registry.get("user") or not registry.get("password"):
        errors.append(f"{at}.registry: needs user and password")
    server = registry.get("server") or settings["registry_server"]
    if not server:
        errors.append(f"{at}.registry.server: required (hosting_registry_server is not set)")
    elif not errors:
        # the engine's own rule for a login, which merges it at every start: a server such
        # as https://registry.example.net is refused here, before anything is written (the
        # messages never show the password)
        errors += login_errors(
            f"{at}.registry.server"
            if registry.get("server")
            else f"hosting_registry_server (hosting {h['name']})",
            f"{at}.registry",
            str(server),
            {"user": registry["user"], "password": registry["password"]},
        )
    return errors


def _sftp_errors(at, sftp):
    if sftp is None:
        return []
    if not isinstance(sftp, dict):
        return [f"{at}.sftp: must be a mapping (authorized_keys, tenant_keys)"]
    errors = [
        inventory_checks.unknown_key(f"{at}.sftp", key, ("authorized_keys", "tenant_keys"))
        for key in sftp
        if key not in ("authorized_keys", "tenant_keys")
    ]
    if "tenant_keys" in sftp and not isinstance(sftp["tenant_keys"], bool):
        errors.append(f"{at}.sftp.tenant_keys: must be true or false")
    keys = sftp.get("authorized_keys") or []
    if not isinstance(keys, list):
        return errors + [f"{at}.sftp.authorized_keys: must be a list of public key lines"]
    if len(keys) > ssh_keys.MAX_KEYS:
        errors.append(f"{at}.sftp.authorized_keys: at most {ssh_keys.MAX_KEYS} keys")
    for i, line in enumerate(keys):
        if not isinstance(line, str):
            errors.append(f"{at}.sftp.authorized_keys[{i}]: must be one line of text")
            continue
        if "\n" in line.strip():
            errors.append(f"{at}.sftp.authorized_keys[{i}]: must be one line (one key per item)")
            continue
        try:
            ssh_keys.parse_key(line.strip())
        except ssh_keys.KeyLineError as exc:
            errors.append(f"{at}.sftp.authorized_keys[{i}]: {exc}")
    return errors


def _cron_errors(at, jobs):
    errors = []
    names = [job.get("name") for job in jobs if isinstance(job, dict)]
    for i, job in enumerate(jobs):
        where = f"{at}.cron_jobs[{i}]"
        job = job if isinstance(job, dict) else {}
        name = job.get("name")
        if not hm.LABEL_RE.fullmatch(str(name or "")):
            errors.append(f"{where}.name: required; lowercase letters, digits and '-'")
        elif _count(names, name) > 1:
            errors.append(f"{where}.name: {name} is used twice")
        if not hm.LABEL_RE.fullmatch(str(job.get("container") or "")):
            errors.append(f"{where}.container: required; the name of a container of the pod")
        if not job.get("command"):
            errors.append(f"{where}.command: required")
        if not job.get("schedule"):
            errors.append(
                f"{where}.schedule: required (a systemd OnCalendar expression,"
                ' e.g. "*-*-* 03:00:00")'
            )
    return errors


def changed_start_inputs(model, actions):
    """The paths among ``actions`` (a paths group's {path: action}) that the pod unit reads
    at its start: the policy, the provider's registry login and env files. Sorted; empty
    when none changed, so that a no-op run restarts nothing."""
    env_dir = model["provider_env_dir"].rstrip("/") + "/"
    return sorted(
        path for path in actions or {} if path in model["start_inputs"] or path.startswith(env_dir)
    )


def todo_reasons(model, run):
    """Why one hosting needs work in this run; an empty list when it is converged.

    `run` holds the results of the role's host-wide calls: passwd, groups, shadow (getent
    tables), files (paths groups), pods (pod_spec results), users and system (host_state),
    exists (host_state probes), failed_subids (names), trigger_units_changed (bool).
    """
    name = model["name"]
    passwd, groups = run.get("passwd") or {}, run.get("groups") or {}
    if model["state"] == "absent":
        reasons = ["user or group left"] if name in passwd or name in groups else []
        if name in passwd and hm.account_expiry(run.get("shadow") or {}, name) != hm.LOCKED_EXPIRY:
            reasons.append("account not locked")  # before the archive (tasks/absent.yml)
        exists = run.get("exists") or {}
        return reasons + [f"{path} left" for path in model["left_paths"] if exists.get(path)]
    reasons = []
    files = (run.get("files") or {}).get(name) or {"failed": True, "msg": "not laid out"}
    render = (run.get("pods") or {}).get(name) or {}
    state = (run.get("users") or {}).get(name) or {"manager": "", "units": {}}
    trigger = (run.get("system") or {}).get(model["trigger_unit"]) or {}
    if not account_ok(model, run):
        reasons.append("user or group")
    if name in (run.get("failed_subids") or {}):
        reasons.append("subordinate ids")
    if files.get("failed"):
        reasons.append("files: " + str(files.get("msg", "")))
    else:
        if files.get("actions"):
            reasons.append("files changed")
        if not files["exists"].get(model["pod_file"]):
            reasons.append("no pod file")
        if not files["exists"].get(model["linger_file"]):
            reasons.append("no linger")
    if "msg" in render:
        reasons.append("pod file does not validate")
    elif render.get("fallback"):
        reasons.append("pod file does not validate, the last valid one runs")
    if render.get("changed"):
        reasons.append("rendered pod changed")
    if state.get("manager") != "active":
        reasons.append("user manager " + (state.get("manager") or "unknown"))
    else:
        for unit, active in state.get("units", {}).items():
            if (
                unit in model.get("socket_units", [])
                and state["units"].get(model["unit"]) != "active"
            ):
                continue  # forwarders run with their pod only
            if active != "active":
                reasons.append(f"{unit} {active or 'unknown'}")
    acls = (run.get("acls") or {}).get(model["data_dir"] + ":default") or {}
    if acls.get(str(model["uid"])) != "rwx":
        reasons.append("data/ default ACL")
    if trigger.get("active") != "active" or trigger.get("file") != "enabled":
        reasons.append(f"{model['trigger_unit']} not watching")
    keys = (run.get("system") or {}).get(model["keys_unit"]) or {}
    if model["tenant_keys"] and (keys.get("active") != "active" or keys.get("file") != "enabled"):
        reasons.append(f"{model['keys_unit']} not watching")
    if not model["tenant_keys"] and keys.get("active") == "active":
        reasons.append(f"{model['keys_unit']} watching, tenant keys are off")
    if run.get("trigger_units_changed"):
        reasons.append("restart trigger units changed")
    return reasons


def bringup_items(plan, todo, run):
    """The hostings of ``todo`` that the module ``bringup`` brings up together: present,
    their files laid out with a pod file, their pod valid (not the last valid version of
    a broken edit), no linger and no running user manager (so their manager reads every
    unit file when it starts), and either no account yet or one exactly as wanted. Any
    other hosting that needs work goes through the role's tasks, one at a time. ``run``
    as for todo_reasons."""
    passwd, groups = run.get("passwd") or {}, run.get("groups") or {}
    items = []
    for name in todo:
        model = plan["models"][name]
        files = (run.get("files") or {}).get(name) or {"failed": True}
        render = (run.get("pods") or {}).get(name) or {}
        state = (run.get("users") or {}).get(name) or {}
        if (
            model["state"] != "present"
            or files.get("failed")
            or not files.get("exists", {}).get(model["pod_file"])
            or files["exists"].get(model["linger_file"])
            or name in (run.get("failed_subids") or {})
            or "msg" in render
            or render.get("fallback")
            or state.get("manager") == "active"
            or not (account_ok(model, run) or (name not in passwd and name not in groups))
        ):
            continue
        items.append(
            {
                "name": name,
                "uid": model["uid"],
                "gid": model["gid"],
                "gecos": model["gecos"],
                "home": model["home"],
                "sftp_group": model["sftp_group"],
                "data_dir": model["data_dir"],
                "linger_file": model["linger_file"],
                "unit": model["unit"],
                "units": model["ops_triggers"],
                "system_units": [model["trigger_unit"]]
                + ([model["keys_unit"]] if model["tenant_keys"] else []),
            }
        )
    return items


def account_ok(model, run):
    return hm.account_ok(
        model, run.get("passwd") or {}, run.get("groups") or {}, run.get("shadow") or {}
    )
