# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one hosting is on a pod host, computed from its inventory entry and the role settings.

Pure Python (standard library and PyYAML), no Ansible import: the hosting role gets this
through the filters of plugins/filter/hosting.py and hands the data to its modules; Jinja
renders only the unit files and the logrotate configuration a person reads.

Where is the path of a hosting's pod file decided? In `layout()`, key `pod_file`.
Everything a hosting has on the host (directories, files, units, links, the policy, what
removal leaves) is decided here, once:
- `layout(hosting, settings)`: paths, units and the policy of one hosting;
- `files(model, hosting, settings)`: the group of paths for the `webhosting.pods.paths`
  action (directories, files, unit templates, links, what to prune and probe);
- `preflight_errors(...)`, `todo_reasons(...)`: the checks before a run and the reasons a
  hosting needs work in it.

`settings` is a dict of the role's public variables without their `hosting_` prefix
(roles/hosting/vars/main.yml builds it): base_dir, state_base_dir, config_dir,
socket_ports, policy_defaults, registry_server, userpod_path, podman_path, systemctl_path,
pod_start_timeout, uid_min, uid_max.
"""

import base64
import json
import re

import yaml
from ansible_collections.webhosting.pods.plugins.module_utils import ssh_keys

UNIT = "webhosting-pod.service"
# The tenant operation units of the user manager (templates/<unit>.j2).
OPS_UNITS = (
    "webhosting-pod-restart.service",
    "webhosting-pod-update.timer",
    "webhosting-pod-update.service",
    "webhosting-cron@.service",
)
UPDATE_TIMER = "webhosting-pod-update.timer"
# The socket forwarder of each port into the pod (started with the pod).
SOCKET_UNIT = "webhosting-socket@.service"
SOCKET_UNIT_GLOB = "webhosting-socket@*.service"
# Policy keys that follow from the layout; an inventory cannot set them.
LAYOUT_KEYS = (
    "name",
    "volumes_base_dir",
    "container_env_dir",
    "provider_env_dir",
    "tmp_dir",
    "socket_ports",
    "pidfile",
)
LINGER_DIR = "/var/lib/systemd/linger"
RUN_BASE_DIR = "/run/webhosting-pods"
GECOS = "webhosting pod user {name}"
NOLOGIN = "/usr/sbin/nologin"
HEADER = "# Managed by webhosting.pods (Ansible): changes made here are overwritten.\n"

NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?")
DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
)
LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Directories of a hosting, parents first: (key or path below the root, owner, group, mode).
# Owner "user" is the hosting's uid; group "user"/"hosting" its gid, else root (0).
_DIRECTORIES = (
    ("etc_dir", "root", "root", "0755"),
    ("home", "root", "root", "0755"),
    ("home:.config", "root", "root", "0755"),
    ("home:.config/systemd", "root", "root", "0755"),
    ("unit_dir", "root", "root", "0755"),
    ("unit_dir:default.target.wants", "root", "root", "0755"),
    ("unit_dir:" + UNIT + ".wants", "root", "root", "0755"),
    ("storage_dir", "user", "user", "0700"),
    ("state_dir", "user", "user", "0700"),
    ("state_dir:config", "user", "user", "0700"),
    ("root", "root", "hosting", "0750"),
    ("root:www", "user", "user", "2750"),
    # root-owned and sticky: the tenant adds and removes their own files, but cannot
    # replace the container log (root's, conmon appends through the group) with a link
    ("log_dir", "root", "hosting", "1770"),
    ("root:scripts", "user", "user", "0750"),
    ("root:scripts/pod_restart", "user", "user", "0750"),
    ("keys_dir", "user", "user", "0750"),
    ("root:data", "user", "user", "2770"),
    ("root:tmp", "user", "user", "2770"),
    ("root:private", "root", "hosting", "0750"),
    # The tenant creates and replaces their own files here (an SFTP client's upload to a
    # temporary name and rename); the sticky bit keeps them from removing or replacing
    # the files root owns (system.yaml, the admin's env files).
    ("container_config", "root", "hosting", "1770"),
    # the provider's env files (inventory env_files): root's, read by the hosting user
    ("provider_env_dir", "root", "hosting", "0750"),
    # Outside the tenant's tree (the tenant cannot put a link where nginx connects); the
    # socket unit, as the hosting user, gives nginx its ACL entries here. /run is emptied
    # at boot: systemd-tmpfiles creates it again (templates/tmpfiles.j2).
    ("run_dir", "user", "user", "0750"),
)


class HostingError(Exception):
    """A hosting the model cannot describe; the message names the field."""


def limit_list(limit):
    """The hosting names of a limit given as a list or a comma-separated string."""
    items = limit.split(",") if isinstance(limit, str) else list(limit or [])
    return [str(item).strip() for item in items if str(item).strip()]


def select(hostings, limit):
    """The hostings a run converges: all of them, or those named by the limit."""
    names = limit_list(limit)
    return [h for h in hostings if not names or h.get("name") in names]


def is_present(hosting):
    return hosting.get("state", "present") == "present"


def merge(base, override):
    """`base` updated with `override`, mappings merged key by key (Ansible's recursive
    combine: lists and scalars are replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def layout(hosting, settings):
    """Paths, units and policy of one hosting (a dict; see the module docstring)."""
    name = hosting["name"]
    root = f"{settings['base_dir']}/{name}"
    home = f"{settings['state_base_dir']}/users/{name}"
    state_dir = f"{settings['state_base_dir']}/state/{name}"
    etc_dir = f"{settings['config_dir']}/hostings/{name}"
    container_config = f"{root}/private/container-config"
    unit_dir = f"{home}/.config/systemd/user"
    run_dir = f"{settings.get('run_base_dir') or RUN_BASE_DIR}/{name}"
    ports = [int(p) for p in hosting.get("socket_ports", settings["socket_ports"])]
    # Every port gets a forwarder: nginx connects only to sockets outside the tenant's tree.
    forwarded = list(ports)
    cron_jobs = [dict(job) for job in hosting.get("cron_jobs", [])]
    model = {
        "name": name,
        "uid": int(hosting["uid"]),
        "gid": int(hosting["gid"]),
        "state": hosting.get("state", "present"),
        "root": root,
        "home": home,
        "storage_dir": f"{settings['state_base_dir']}/storage/{name}",
        "state_dir": state_dir,
        "config_home": f"{state_dir}/config",
        "etc_dir": etc_dir,
        "policy_file": f"{etc_dir}/system.yaml",
        # the provider's registry login (inventory `registry`), merged at every start,
        # restart and update with the tenant's (tenant_auth_file) into auth_file, the one
        # podman uses (userpod auth)
        "provider_auth_file": f"{etc_dir}/auth.json",
        "auth_file": f"{state_dir}/auth.json",
        "provider_env_dir": f"{etc_dir}/env",
        # What the pod unit reads at every start besides the rendered pod and its units: a
        # converge that changes one of these restarts the running pod (issue 31). The
        # provider's env files (provider_env_dir) count too; their values are also in the
        # rendered pod.
        "start_inputs": [f"{etc_dir}/system.yaml", f"{etc_dir}/auth.json"],
        "ops_file": f"{etc_dir}/ops.json",
        "container_config": container_config,
        # the provider's tenant documentation names the files of a pod NAME so (the pod is
        # named after the hosting); release 0.1.0 called the first two system.yaml
        # and pod.yaml (renamed at the next converge: legacy_pod_file)
        "tenant_policy_file": f"{container_config}/system-{name}.yaml",
        "pod_file": f"{container_config}/pod-{name}.yaml",
        "legacy_pod_file": f"{container_config}/pod.yaml",
        "tenant_auth_file": f"{container_config}/auth-{name}-registry.yaml",
        "rendered_file": f"{state_dir}/pod.yaml",
        # the tenant's pod file as it was when it last validated (userpod play, pod_spec)
        "last_valid_file": f"{state_dir}/pod.input.yaml",
        "start_log": f"{root}/logs/pod_start.log",
        # the supervisor's view of the pod (userpod play --status): podops status reads the
        # first, the tenant the second
        "status_file": f"{state_dir}/status.json",
        "tenant_status_file": f"{root}/logs/pod_status.json",
        "log_dir": f"{root}/logs",
        # The container log of the pod (podman's k8s-file driver, one file for its containers).
        "pod_log": f"{root}/logs/{name}-{name}.log",
        "unit_dir": unit_dir,
        "unit": UNIT,
        "trigger": f"{root}/scripts/pod_restart/pod_restart.run",
        "trigger_unit": f"webhosting-trigger@{name}.path",
        # SFTP: sshd reads the inventory's keys and the tenant's applied keys (both
        # root-owned, outside the chroot); the tenant edits keys_source and creates
        # keys_trigger (webhosting-keys@NAME.path, bin/sshkeys).
        "sftp_keys": sftp_keys(hosting),
        "sftp_keys_file": f"{etc_dir}/authorized_keys",
        "tenant_keys": bool(
            (hosting.get("sftp") or {}).get("tenant_keys", settings.get("sftp_tenant_keys", True))
        ),
        "tenant_keys_file": f"{etc_dir}/tenant_keys",
        "keys_dir": f"{root}/scripts/ssh_keys",
        "keys_source": f"{root}/scripts/ssh_keys/authorized_keys",
        "keys_trigger": f"{root}/scripts/ssh_keys/ssh_keys.run",
        "keys_unit": f"webhosting-keys@{name}.path",
        "linger_file": f"{LINGER_DIR}/{name}",
        "systemctl": ["systemctl", "--user", f"--machine={name}@"],
        "gecos": GECOS.format(name=name),
        "sftp_group": settings.get("sftp_group") or "",
        "registry": "registry" in hosting,
        "cron_jobs": cron_jobs,
        "storage_max_bytes": size_bytes(
            hosting.get("container_storage_max", settings.get("container_storage_max", 0))
        )
        or 0,
        # The ceilings of everything the hosting user runs (its manager, pods, SFTP
        # sessions), set by root on the user's slice: the tenant cannot lift them.
        "limits": limits(hosting, settings),
        "slice_dropin_dir": f"{SYSTEM_UNIT_DIR}/user-{int(hosting['uid'])}.slice.d",
        "manager_dropin_dir": f"{SYSTEM_UNIT_DIR}/user@{int(hosting['uid'])}.service.d",
        # The sockets nginx connects to, one per port: published for the ingress role.
        "run_dir": run_dir,
        # containers and the tenant share data/: its default ACL gives the hosting user
        # rwx on everything created below it, whatever the creator's umask
        "data_dir": f"{root}/data",
        "socket_ports": ports,
        "sockets": {port: f"{run_dir}/{port}" for port in ports},
        "forwarded_ports": forwarded,
        "socket_units": [f"webhosting-socket@{port}.service" for port in forwarded],
        "ops_units": list(OPS_UNITS),
        "ops_triggers": [UPDATE_TIMER]
        + [f"webhosting-cron-{job['name']}.timer" for job in cron_jobs],
    }
    model["slice_dropin"] = f"{model['slice_dropin_dir']}/{SLICE_DROPIN}"
    model["manager_dropin"] = f"{model['manager_dropin_dir']}/{SLICE_DROPIN}"
    model["pod_file_shown"] = _below(model, model["pod_file"])
    model["tenant_auth_shown"] = _below(model, model["tenant_auth_file"])
    model["policy"] = policy(hosting, settings, model)
    # What a removed hosting may have left (tasks/absent.yml removes these).
    model["left_paths"] = [
        root,
        home,
        model["storage_dir"],
        state_dir,
        etc_dir,
        model["linger_file"],
        run_dir,
        model["slice_dropin"],
        model["manager_dropin"],
    ]
    return model


SYSTEM_UNIT_DIR = "/etc/systemd/system"
SLICE_DROPIN = "50-webhosting-pods.conf"
# The inventory's names (systemd's), their defaults and how each is written in the slice.
LIMIT_KEYS = ("tasks_max", "memory_max", "cpu_weight")


def limits(hosting, settings):
    """The resource ceilings of a hosting: role defaults, then the hosting's `limits`
    (preflight has checked them; hosting_checks.limit_problems)."""
    merged = dict(settings.get("limits") or {})
    merged.update(hosting.get("limits") or {})
    result = {}
    for key in LIMIT_KEYS:
        value = merged.get(key)
        if value is None or str(value).strip().lower() in ("", "infinity"):
            result[key] = "infinity" if key != "cpu_weight" else None
        elif key == "memory_max":
            result[key] = size_bytes(value)
        else:
            result[key] = int(value)
    return result


def limits_changed(plan, files):
    """Whether the paths call changed a drop-in of a selected hosting's slice or user
    manager (the system manager then reloads; a slice takes the change at once, a user
    manager when tasks/pod.yml restarts it)."""
    for name, model in plan["models"].items():
        actions = ((files or {}).get(name) or {}).get("actions") or {}
        if model["slice_dropin"] in actions or model["manager_dropin"] in actions:
            return True
    return False


def slice_text(model):
    """The drop-in of the hosting user's slice (user-UID.slice): systemd applies it to every
    process of the user, on cgroup v1 and v2 alike."""
    lim = model["limits"]
    lines = [
        HEADER.rstrip("\n"),
        f"# Resource ceilings of hosting {model['name']} (every process of its user: the",
        "# pod, its units, SFTP sessions). Set in the inventory (limits), docs/hostings.md.",
        "[Slice]",
        f"TasksMax={lim['tasks_max']}",
        f"MemoryMax={lim['memory_max']}",
    ]
    if lim["cpu_weight"] is not None:
        lines.append(f"CPUWeight={lim['cpu_weight']}")
    return "\n".join(lines) + "\n"


def manager_text(model):
    """The drop-in of the hosting user's manager (user@UID.service): tasks_max as the hard
    RLIMIT_NPROC of the manager and everything it starts. The kernel counts a process in a
    user namespace against the namespace owner too (ucounts), so the containers of the
    rootless pod count, and nothing in the hosting can raise a hard limit. It bounds a fork
    bomb where the slice's TasksMax cannot (cgroup v1 without writable controllers)."""
    return (
        "\n".join(
            [
                HEADER.rstrip("\n"),
                f"# Process ceiling of hosting {model['name']} (limits.tasks_max),"
                " docs/hostings.md.",
                "[Service]",
                f"LimitNPROC={model['limits']['tasks_max']}",
            ]
        )
        + "\n"
    )


SIZE_RE = re.compile(r"([0-9]+)([KMGT]?)", re.IGNORECASE)


def size_bytes(value):
    """Bytes of a size given as a number or as text like 500M or 10G (powers of 1024); None
    when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    match = SIZE_RE.fullmatch(str(value).strip())
    if not match:
        return None
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(match.group(1)) * 1024**power


def sftp_keys(hosting):
    """The inventory's SFTP keys of a hosting, parsed (preflight has checked them)."""
    keys = []
    for line in (hosting.get("sftp") or {}).get("authorized_keys") or []:
        try:
            keys.append(ssh_keys.parse_key(str(line).strip()))
        except ssh_keys.KeyLineError:
            continue
    return keys


def keys_text(model):
    """The root-owned key file sshd reads for the inventory's keys of a hosting."""
    header = [
        f"SFTP keys of hosting {model['name']} from the inventory (webhosting.pods, Ansible):",
        "changes made here are overwritten. The tenant's own keys are in tenant_keys.",
    ]
    return ssh_keys.file_text(header, model["sftp_keys"])


TENANT_AUTH_SEED = """\
# Your registry logins: podman uses them to pull the images of your pod. One entry per
# registry that needs a login (a read-only account or token is enough), for example:
#
# registry.example.com:
#   user: myreaduser
#   password: some_password
#
# They apply at the next start of your pod (scripts/pod_restart/pod_restart.run); a file
# that cannot be used is reported in logs/pod_restart.log and changes nothing. Logins your
# provider set up for you are kept outside your folders and win for the same registry.
"""


TENANT_KEYS_SEED = """\
# Your SFTP keys: one OpenSSH public key per line (the contents of your id_ed25519.pub,
# for example "ssh-ed25519 AAAAC3Nz... me@laptop"). Lines starting with # are ignored.
# To apply this file, create scripts/ssh_keys/ssh_keys.run; the result is written to
# logs/ssh_keys.log. The keys your provider set up for you keep working either way.
"""


def policy(hosting, settings, model):
    """The authoritative system policy: defaults, the hosting's own overrides, then the
    keys that follow from the layout (these always win)."""
    result = merge(settings.get("policy_defaults") or {}, hosting.get("policy") or {})
    result.update(
        {
            "name": model["name"],
            "volumes_base_dir": model["root"],
            "container_env_dir": model["container_config"],
            "provider_env_dir": model["provider_env_dir"],
            "tmp_dir": f"{model['root']}/tmp",
            "socket_ports": {port: {"dir": model["run_dir"]} for port in model["socket_ports"]},
            "pidfile": f"{model['state_dir']}/pod.pid",
        }
    )
    return result


def _directory(model, key):
    base, _, below = key.partition(":")
    return f"{model[base]}/{below}" if below else model[base]


def _owner(model, who):
    return model["uid"] if who == "user" else 0


def _group(model, who):
    return model["gid"] if who in ("user", "hosting") else 0


def policy_text(model):
    """The system.yaml of a hosting, as the tenant reads it too."""
    return (
        HEADER + f"# System policy of hosting {model['name']}: what its pod may do"
        " (docs/system-policy.md).\n"
        + f"# The authoritative copy is {model['policy_file']}; the tenant reads\n"
        + f"# {model['tenant_policy_file']}. Changes are made in the inventory.\n"
        + yaml.safe_dump(model["policy"], indent=2, allow_unicode=True, default_flow_style=False)
    )


def env_text(model, container, env):
    lines = [
        HEADER.rstrip("\n"),
        f"# Environment of container {container} of hosting {model['name']} (from the inventory).",
    ]
    lines += [f"{key}={_scalar_text(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def _scalar_text(value):
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


def auth_text(hosting, settings):
    """The registry credentials of a hosting (podman's auth.json)."""
    registry = hosting["registry"]
    server = registry.get("server") or settings["registry_server"]
    token = base64.b64encode(f"{registry['user']}:{registry['password']}".encode()).decode()
    return _json({"auths": {server: {"auth": token}}})


def ops_text(model, settings):
    """podops's configuration of a hosting (root-owned; bin/podops reads it)."""
    return _json(
        {
            "hosting": model["name"],
            "pod": model["name"],
            "unit": model["unit"],
            "reset_with": [SOCKET_UNIT_GLOB],
            "trigger": model["trigger"],
            "log_dir": model["log_dir"],
            "state_dir": model["state_dir"],
            "pod_file": model["pod_file"],
            "pod_file_shown": model["pod_file_shown"],
            "policy_file": model["policy_file"],
            "rendered_file": model["rendered_file"],
            # registry logins: the tenant's file merged with the provider's (userpod auth)
            "tenant_auth_file": model["tenant_auth_file"],
            "tenant_auth_shown": model["tenant_auth_shown"],
            "provider_auth_file": model["provider_auth_file"],
            "auth_file": model["auth_file"],
            "userpod": settings["userpod_path"],
            "podman": settings["podman_path"],
            "systemctl": settings["systemctl_path"],
            "timeout": int(settings["pod_start_timeout"]),
            # the bound of the hosting's container storage, checked after every pull
            "storage_dir": model["storage_dir"],
            "storage_max_bytes": model["storage_max_bytes"],
            # podops status (run by root): what it reports on
            "root": model["root"],
            "status_file": model["status_file"],
            "cron_jobs": {
                job["name"]: {"container": job["container"], "command": job["command"]}
                for job in model["cron_jobs"]
            },
            # bin/sshkeys (run as root): paths below the root are walked without links
            "ssh_keys": {
                "enabled": model["tenant_keys"],
                "hosting": model["name"],
                "uid": model["uid"],
                "gid": model["gid"],
                "root": model["root"],
                "source": _below(model, model["keys_source"]),
                "trigger": _below(model, model["keys_trigger"]),
                "log": "logs/ssh_keys.log",
                "dest": model["tenant_keys_file"],
            },
        }
    )


def _tenant_seed(model, path, content):
    """A file the tenant owns from the start: written once, never touched again."""
    return {
        "path": path,
        "content": content,
        "owner": model["uid"],
        "group": model["gid"],
        "mode": "0640",
        "create_only": True,
    }


def _below(model, path):
    return path[len(model["root"]) + 1 :]


def _json(data):
    return json.dumps(data, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def _root_file(path, content=None, template=None, mode="0644", group=0):
    entry = {"path": path, "owner": 0, "group": group, "mode": mode}
    if template is None:
        entry["content"] = content
    else:
        entry["template"] = template
    return entry


def _link(path, src):
    return {"path": path, "state": "link", "src": src, "owner": 0, "group": 0}


def files(model, hosting, settings):
    """The `webhosting.pods.paths` group of one hosting: every directory, file, unit and
    link it has, parents first; what to prune; which paths to probe. Unit files are
    templates the paths action renders with `__hosting` bound to the model."""
    gid, unit_dir = model["gid"], model["unit_dir"]
    paths = [
        {
            "path": _directory(model, key),
            "state": "directory",
            "owner": _owner(model, owner),
            "group": _group(model, group),
            "mode": mode,
        }
        for key, owner, group, mode in _DIRECTORIES
    ]
    paths.append(
        {
            "path": model["slice_dropin_dir"],
            "state": "directory",
            "owner": 0,
            "group": 0,
            "mode": "0755",
        }
    )
    paths.append(_root_file(model["slice_dropin"], slice_text(model)))
    paths.append(
        {
            "path": model["manager_dropin_dir"],
            "state": "directory",
            "owner": 0,
            "group": 0,
            "mode": "0755",
        }
    )
    paths.append(_root_file(model["manager_dropin"], manager_text(model)))
    text = policy_text(model)
    paths.append(_root_file(model["policy_file"], text))
    paths.append(_root_file(model["tenant_policy_file"], text))
    if model["registry"]:
        paths.append(
            _root_file(
                model["provider_auth_file"], auth_text(hosting, settings), mode="0640", group=gid
            )
        )
    else:
        paths.append({"path": model["provider_auth_file"], "state": "absent"})
    paths.append(_tenant_seed(model, model["tenant_auth_file"], TENANT_AUTH_SEED))
    for container, env in (hosting.get("env_files") or {}).items():
        paths.append(
            _root_file(
                f"{model['provider_env_dir']}/{model['name']}-{container}.env",
                env_text(model, container, env),
                mode="0640",
                group=gid,
            )
        )
    if model["sftp_keys"]:
        paths.append(_root_file(model["sftp_keys_file"], keys_text(model), mode="0640", group=gid))
    else:
        paths.append({"path": model["sftp_keys_file"], "state": "absent"})
    if model["tenant_keys"]:
        paths.append(_tenant_seed(model, model["keys_source"], TENANT_KEYS_SEED))
    else:
        paths.append({"path": model["tenant_keys_file"], "state": "absent"})
    # the tenant's pod file of an earlier release, under its new name (never replacing a
    # file the tenant wrote under that name)
    paths.append({"path": model["legacy_pod_file"], "state": "moved", "dest": model["pod_file"]})
    if "pod" in hosting:
        text = yaml.safe_dump(
            hosting["pod"],
            indent=2,
            allow_unicode=True,
            default_flow_style=False,
            sort_keys=False,
        )
        paths.append(_tenant_seed(model, model["pod_file"], text))
    # The container log: root's in the root-owned, sticky logs/ (so the tenant cannot swap
    # it for a link conmon would follow), written by conmon through the hosting's group.
    paths.append(
        {
            "path": model["pod_log"],
            "content": "",
            "owner": 0,
            "group": gid,
            "mode": "0660",
            "keep_content": True,
        }
    )
    paths.append(_root_file(f"{unit_dir}/{UNIT}", template=f"{UNIT}.j2"))
    paths.append(_link(f"{unit_dir}/default.target.wants/{UNIT}", f"../{UNIT}"))
    # The socket forwarders: the pod unit wants one per port.
    paths.append(_root_file(f"{unit_dir}/{SOCKET_UNIT}", template=f"{SOCKET_UNIT}.j2"))
    for port in model["forwarded_ports"]:
        paths.append(
            _link(f"{unit_dir}/{UNIT}.wants/webhosting-socket@{port}.service", f"../{SOCKET_UNIT}")
        )
    paths.append(_root_file(model["ops_file"], ops_text(model, settings)))
    for unit in model["ops_units"]:
        paths.append(_root_file(f"{unit_dir}/{unit}", template=f"{unit}.j2"))
    for job in model["cron_jobs"]:
        entry = _root_file(
            f"{unit_dir}/webhosting-cron-{job['name']}.timer", template="webhosting-cron.timer.j2"
        )
        entry["vars"] = {"__hosting_job": job}
        paths.append(entry)
    for unit in model["ops_triggers"]:
        paths.append(_link(f"{unit_dir}/default.target.wants/{unit}", f"../{unit}"))
    return {
        "name": model["name"],
        "vars": {"__hosting": model},
        "paths": paths,
        "prune": [
            # only the files root wrote: the tenant's own env files stay; the provider's env
            # files and system.yaml were kept here by 0.1.0
            {"dir": model["container_config"], "pattern": "*.env", "owner": 0},
            {"dir": model["container_config"], "pattern": "system.yaml", "owner": 0},
            {"dir": model["provider_env_dir"], "pattern": "*.env"},
            {"dir": unit_dir, "pattern": "webhosting-cron-*.timer"},
            {"dir": f"{unit_dir}/default.target.wants", "pattern": "webhosting-cron-*.timer"},
            {"dir": f"{unit_dir}/{UNIT}.wants", "pattern": SOCKET_UNIT_GLOB},
        ],
        "probe": [model["pod_file"], model["linger_file"]],
    }


def account_ok(model, passwd, groups, shadow):
    """True when getent shows the group and the locked, shell-less user exactly as wanted,
    a member of the SFTP group (and of no other supplementary group)."""
    entry = passwd.get(model["name"])
    if not entry or len(entry) < 6:
        return False
    group = groups.get(model["name"]) or ["", "-1"]
    wanted = {model["sftp_group"]} if model.get("sftp_group") else set()
    member_of = {
        key
        for key, fields in groups.items()
        if key != model["name"] and model["name"] in _members(fields)
    }
    return (
        member_of == wanted
        and _int(entry[1]) == model["uid"]
        and _int(entry[2]) == model["gid"]
        and entry[3] == model["gecos"]
        and entry[4] == model["home"]
        and entry[5] == NOLOGIN
        and _int(group[1]) == model["gid"]
        and (shadow.get(model["name"]) or [""])[0] == "!"
        # no expiry date: an account locked by a refused removal is unlocked again
        and account_expiry(shadow, model["name"]) == ""
    )


# The field of getent shadow's entry (after the name: password, last change, min, max,
# warn, inactive, expire) that locks an account for every login, keys included; the
# removal sets it to LOCKED_EXPIRY (day 1) before it archives (tasks/absent.yml).
_SHADOW_EXPIRE = 6
LOCKED_EXPIRY = "1"


def account_expiry(shadow, name):
    """The expiry day of ``name``'s account in the getent shadow table, "" for none."""
    fields = shadow.get(name) or []
    return fields[_SHADOW_EXPIRE] if len(fields) > _SHADOW_EXPIRE else ""


def _members(fields):
    return (fields[2] if len(fields) > 2 else "").split(",")


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def plan(hostings, settings, limit):
    """The model of every selected hosting and the arguments of the role's host-wide
    calls (roles/hosting/tasks/main.yml)."""
    selected = select(hostings, limit)
    models = {h["name"]: layout(h, settings) for h in selected}
    present = [h for h in selected if is_present(h)]
    absent = [models[h["name"]] for h in selected if not is_present(h)]
    return {
        "models": models,
        "names": [h["name"] for h in selected],
        "present": [h["name"] for h in present],
        "absent": [m["name"] for m in absent],
        "subid_users": [{"name": h["name"], "uid": models[h["name"]]["uid"]} for h in present],
        "file_groups": [files(models[h["name"]], h, settings) for h in present],
        "state_users": [
            {
                "name": h["name"],
                "uid": models[h["name"]]["uid"],
                "units": [UNIT]
                + models[h["name"]]["ops_triggers"]
                + models[h["name"]]["socket_units"],
            }
            for h in present
        ],
        # the default ACL of each data/ (the group share, tasks/present.yml)
        "acls": [
            {
                "path": models[h["name"]]["data_dir"],
                "user": str(models[h["name"]]["uid"]),
                "default": True,
            }
            for h in present
        ],
        "trigger_units": [m["trigger_unit"] for m in models.values()]
        + [m["keys_unit"] for m in models.values()],
        "left_paths": [path for m in absent for path in m["left_paths"]],
        # every hosting of the inventory, whatever the limit (the ingress role may converge
        # others); the selected ones from their model computed above
        "published": {
            h["name"]: published(models.get(h["name"]) or layout(h, settings)) for h in hostings
        },
        # whether a file of the paths call holds a secret (its result is then not logged)
        "secret": any("registry" in h or h.get("env_files") for h in present),
        # A hosting this collection made and the inventory no longer names (its item was
        # deleted instead of set to state: absent) is found by its entry in one of these
        # directories (host_state `orphans`) and reported by every converge.
        "orphans": {
            "known": sorted({h["name"] for h in hostings}),
            "dirs": orphan_dirs(settings),
        },
        # the hostings the inventory wants on this host, for podops status, which marks the
        # others; the present ones only: a hosting being removed (state: absent, as move.yml
        # leaves it on the old host) is not wanted, and the file stays the same once it is gone
        "inventory_file": _root_file(
            f"{settings['config_dir']}/inventory.json",
            _json({"hostings": sorted({h["name"] for h in hostings if is_present(h)})}),
        ),
    }


def orphan_dirs(settings):
    """The directories that hold one entry per hosting, named after it: the hosting roots,
    their configuration and their state (the user's home)."""
    return [
        settings["base_dir"],
        f"{settings['config_dir']}/hostings",
        f"{settings['state_base_dir']}/state",
    ]


def published(model):
    """What the hosting publishes for the ingress role (the fact hosting_published_paths;
    docs/architecture.md): the root nginx passes through, the web files it may serve and
    the socket of each port."""
    return {
        "root": model["root"],
        "www": f"{model['root']}/www",
        "sockets": {str(port): path for port, path in model["sockets"].items()},
    }


def renders(plan, file_results):
    """The pod_spec renders of the hostings whose files are laid out and that have a pod
    file (none yet: check mode on a new host)."""
    result = []
    for name in plan["present"]:
        model = plan["models"][name]
        group = file_results.get(name) or {"failed": True}
        if group.get("failed") or not group.get("exists", {}).get(model["pod_file"]):
            continue
        result.append(
            {
                "name": name,
                "src": model["pod_file"],
                "policy": model["policy"],
                "dest": model["rendered_file"],
                "last_valid": model["last_valid_file"],
                "owner": str(model["uid"]),
                "group": str(model["gid"]),
                "mode": "0600",
            }
        )
    return result
