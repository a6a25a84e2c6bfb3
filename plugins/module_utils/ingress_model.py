# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ingress of one hosting is on a pod host: its nginx server, certificates and
the socket nginx connects to, computed from the inventory entry, the ingress role's
settings and what the hosting role publishes (the fact hosting_published_paths:
the hosting root, www/ and the socket of each port; hosting_model.published).

Pure Python, no Ansible import; plugins/filter/ingress.py hands it to the ingress role.
`settings` holds the role's variables without their `ingress_` prefix (roles/ingress/vars).
"""

import re

from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm

# The keys of a hosting's `ingress` mapping (docs/ingress.md): what this model and the vhost
# template read. Anything else there is a typo (inventory_checks, before anything changes);
# app_socket_ports is refused by the hosting role's preflight with its own message.
HOSTING_INGRESS_KEYS = (
    "certificate_source",
    "certificate_file",
    "certificate_key_file",
    "acme_directory",
    "acme_email",
    "acme_eab_kid",
    "acme_eab_hmac_key",
    "hsts",
    "hsts_max_age",
    "hsts_include_subdomains",
    "tls_protocols",
    "tls_ciphers",
    "client_max_body_size",
    "proxy_connect_timeout",
    "proxy_read_timeout",
    "proxy_send_timeout",
    "upstream_port",
    "upstream_keepalive",
    "upstream_keepalive_timeout",
    "static_paths",
    "keep_certificate",
    "app_socket_ports",
)

# The group of the shared nginx settings in the host-wide comparison (not a hosting name).
SHARED_GROUP = "nginx shared settings"
# Idle upstream connections per nginx worker and hosting (each holds a forwarder connection
# and one of the app's): more would only tie up the app's workers.
MAX_KEEPALIVE = 256


def layout(hosting, settings, published):
    name = hosting["name"]
    opts = dict(hosting.get("ingress") or {})
    paths = published.get(name)
    if paths is None:
        raise hm.HostingError(
            f"hosting {name}: the hosting role published no paths for it"
            " (hosting_published_paths; site.yml runs the hosting role first)"
        )
    ports = [int(port) for port in paths["sockets"]]
    upstream = int(opts.get("upstream_port", ports[0] if ports else 0))
    keepalive = _checked(name, opts, settings, "upstream_keepalive", _connections)
    upstream_socket = paths["sockets"].get(str(upstream), "")
    upstream_name = f"webhosting_pods_{name}"
    letsencrypt = settings["letsencrypt_dir"]
    selfsigned_dir = f"{settings['certificate_dir']}/{name}"
    source = _checked(name, opts, settings, "certificate_source", _source)
    _checked(name, opts, settings, "client_max_body_size", _size)
    model = {
        "name": name,
        "uid": int(hosting["uid"]),
        "state": hosting.get("state", "present"),
        "opts": opts,
        "root": paths["root"],
        "www": paths["www"],
        "ports": ports,
        "upstream_port": upstream,
        "upstream_socket": upstream_socket,
        # nginx `upstream` block (only with keep-alive): the hosting name is unique
        "upstream_name": upstream_name,
        "keepalive": keepalive,
        # With keep-alive nginx goes through the upstream block and must not send
        # "Connection: close"; without, straight to the socket, as before.
        "proxy_pass": f"http://{upstream_name}" if keepalive else f"http://unix:{upstream_socket}:",
        "proxy_connection": "$webhosting_pods_connection_"
        + ("keepalive" if keepalive else "upgrade"),
        "keepalive_timeout": _checked(name, opts, settings, "upstream_keepalive_timeout", _time),
        "domains": list(hosting.get("domains") or []),
        "vhost": f"{settings['vhost_dir']}/{name}.conf",
        "cert_source": source,
        "static": bool(opts.get("static_paths")),
        "selfsigned_dir": selfsigned_dir,
        "selfsigned_cert": f"{selfsigned_dir}/selfsigned.crt",
        "selfsigned_key": f"{selfsigned_dir}/selfsigned.key",
        "acme_cert": f"{letsencrypt}/live/{name}/fullchain.pem",
        "acme_key": f"{letsencrypt}/live/{name}/privkey.pem",
        "acme_leaf": f"{letsencrypt}/live/{name}/cert.pem",
        "eab_conf": f"{settings['certificate_dir']}/{name}.eab.ini",
        "renewal_conf": f"{letsencrypt}/renewal/{name}.conf",
        "acme_directory": opts.get("acme_directory", settings["acme_directory"]),
        "acme_email": opts.get("acme_email", settings["acme_email"]),
        "acme_eab_kid": opts.get("acme_eab_kid", settings["acme_eab_kid"]),
        "acme_eab_hmac_key": opts.get("acme_eab_hmac_key", settings["acme_eab_hmac_key"]),
        "keep_certificate": bool(
            opts.get("keep_certificate", settings["keep_certificate_on_removal"])
        ),
    }
    _check(model)
    return model


# static_paths[].prefix: an absolute URL path nginx matches literally; .dir: a path below
# www/ (no '..', checked by parts).
_PREFIX = re.compile(r"/[A-Za-z0-9._~/-]*")
_DIR = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def _check(model):
    """The ingress settings of one hosting that the templates and nginx rely on: a
    HostingError names the hosting, the field and the problem."""
    name, opts = model["name"], model["opts"]

    def fail(field, problem):
        raise hm.HostingError(f"hosting {name}: {field}: {problem}")

    if model["state"] != "absent" and not model["domains"]:
        fail("domains", "a hosting needs at least one domain for its nginx server")
    if model["cert_source"] == "files":
        for key in ("certificate_file", "certificate_key_file"):
            if not opts.get(key):
                fail(f"ingress.{key}", "is needed with certificate_source files")
    if model["upstream_port"] not in model["ports"]:
        fail(
            "ingress.upstream_port",
            f"{model['upstream_port']!r} is not one of the hosting's socket ports {model['ports']}",
        )
    static = opts.get("static_paths") or []
    if not isinstance(static, list):
        fail("ingress.static_paths", "is not a list")
    for i, entry in enumerate(static):
        field = f"ingress.static_paths[{i}]"
        if not isinstance(entry, dict):
            fail(field, "is not a mapping with prefix (and dir)")
        prefix = entry.get("prefix")
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            fail(f"{field}.prefix", f"{prefix!r} is not an absolute URL path (/[A-Za-z0-9._~/-]*)")
        if "dir" in entry:
            folder = entry["dir"]
            if not isinstance(folder, str) or not _DIR.fullmatch(folder):
                fail(f"{field}.dir", f"{folder!r} is not a relative path below www/")
            if ".." in folder.split("/"):
                fail(f"{field}.dir", f"{folder!r} goes up with '..'")
    if model["cert_source"] == "acme" and not str(model["acme_directory"]).startswith("https://"):
        fail(_field(opts, "acme_directory"), f"{model['acme_directory']!r} is not an https URL")
    if bool(model["acme_eab_kid"]) != bool(model["acme_eab_hmac_key"]):
        fields = f"{_field(opts, 'acme_eab_kid')}, {_field(opts, 'acme_eab_hmac_key')}"
        fail(fields, "give both (external account binding) or neither")


def _field(opts, key):
    """Where a setting came from: the hosting's ingress entry or the role's variable."""
    return f"ingress.{key}" if key in opts else f"ingress_{key}"


def _source(value):
    if value not in ("acme", "files", "selfsigned"):
        raise ValueError("is not one of acme, files, selfsigned")
    return value


def _size(value):
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]+[kKmMgG]?", str(value)):
        raise ValueError("is not an nginx size like 64m")
    return value


def _checked(name, opts, settings, key, check):
    """A per-hosting ingress option or the role's default, checked: the error names the
    field it came from."""
    field = _field(opts, key)
    value = opts[key] if key in opts else settings[key]
    try:
        return check(value)
    except ValueError as e:
        raise hm.HostingError(f"hosting {name}: {field}: {value!r} {e}") from None


def _connections(value):
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_KEEPALIVE:
        raise ValueError(f"is not a number of connections from 0 (off) to {MAX_KEEPALIVE}")
    return int(text)


def _time(value):
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,6}(ms|s|m|h)?", text):
        raise ValueError("is not an nginx time like 4s or 500ms")
    return text


def probe(model, settings):
    """What webhosting.pods.host_state reads for one hosting."""
    user = settings["nginx_user"]
    acls = []
    if hm.is_present(model):
        acls.append({"path": model["root"], "user": user})
        if model["static"]:
            acls += [
                {"path": model["www"], "user": user},
                {"path": model["www"], "user": user, "default": True},
            ]
    source = model["cert_source"]
    certificates = ([model["acme_leaf"]] if source == "acme" else []) + (
        [model["selfsigned_cert"]] if source in ("acme", "selfsigned") else []
    )
    exists = [model["root"], model["vhost"], model["selfsigned_dir"], model["renewal_conf"]]
    if source == "files":
        exists += [model["opts"].get("certificate_file"), model["opts"].get("certificate_key_file")]
    return {"acls": acls, "certificates": certificates, "exists": [p for p in exists if p]}


def certificate(model, certificates):
    """(cert, key) nginx serves: the admin's files, the ACME certificate once there is a
    readable one, else the self-signed stand-in."""
    if model["cert_source"] == "files":
        return model["opts"].get("certificate_file"), model["opts"].get("certificate_key_file")
    leaf = certificates.get(model["acme_leaf"]) or {}
    if model["cert_source"] == "acme" and leaf.get("exists") and "error" not in leaf:
        return model["acme_cert"], model["acme_key"]
    return model["selfsigned_cert"], model["selfsigned_key"]


def server_group(model, certificates):
    """The nginx server of one hosting for the host-wide check-mode comparison of the
    paths action: what tasks/vhost.yml would write."""
    cert, key = certificate(model, certificates)
    return {
        "name": model["name"],
        "vars": {"__ingress": model, "__ingress_cert": cert, "__ingress_key": key},
        "paths": [
            {
                "path": model["vhost"],
                "owner": 0,
                "group": 0,
                "mode": "0644",
                "template": "vhost.conf.j2",
            }
        ],
    }


def plan(hostings, settings, published, limit):
    selected = hm.select(hostings, limit)
    models = {h["name"]: layout(h, settings, published) for h in selected}
    probes = {name: probe(model, settings) for name, model in models.items()}
    return {
        "models": models,
        "names": list(models),
        "present": [name for name, m in models.items() if hm.is_present(m)],
        "acls": [acl for p in probes.values() for acl in p["acls"]],
        "certificates": _unique(c for p in probes.values() for c in p["certificates"]),
        "exists": _unique(path for p in probes.values() for path in p["exists"]),
    }


def _unique(items):
    return list(dict.fromkeys(items))


def todo_reasons(model, settings, run):
    """Why one hosting's ingress needs work; empty when it is converged. `run` holds the
    host-wide results: exists, acls, certificates (host_state) and files (paths groups)."""
    exists = run.get("exists") or {}
    if model["state"] == "absent":
        left = [model["vhost"]]
        if not model["keep_certificate"]:
            left += [model["selfsigned_dir"], model["renewal_conf"]]
        return [f"{path} left" for path in left if exists.get(path)]
    if not exists.get(model["root"]):
        return ["new hosting"]
    reasons = []
    files = (run.get("files") or {}).get(model["name"]) or {"failed": True, "msg": "not checked"}
    if files.get("failed"):
        reasons.append("files: " + str(files.get("msg", "")))
    elif files.get("actions"):
        reasons.append("nginx server differs")
    user = settings["nginx_user"]
    acls = run.get("acls") or {}
    if (acls.get(model["root"]) or {}).get(user) != "--x":
        reasons.append("ACL of the hosting root")
    if model["static"] and (
        (acls.get(model["www"]) or {}).get(user) != "r-x"
        or (acls.get(model["www"] + ":default") or {}).get(user) != "r-x"
    ):
        reasons.append("ACL of www")
    certs = run.get("certificates") or {}
    domains = sorted(model["domains"])
    source = model["cert_source"]
    leaf = certs.get(model["acme_leaf"]) or {}
    selfsigned = certs.get(model["selfsigned_cert"]) or {}
    if source == "acme" and leaf.get("dns_names") != domains:
        reasons.append("ACME certificate missing or for other names")
    if source == "acme" and not leaf.get("exists") and not selfsigned.get("exists"):
        reasons.append("no stand-in certificate")
    if source == "selfsigned" and selfsigned.get("dns_names") != domains:
        reasons.append("self-signed certificate missing or for other names")
    if source == "files" and not (
        exists.get(model["opts"].get("certificate_file"))
        and exists.get(model["opts"].get("certificate_key_file"))
    ):
        reasons.append("certificate files missing")
    return reasons


def certbot_argv(model, settings):
    """certbot's command line for a hosting's ACME certificate (tasks/acme.yml runs the
    same for one hosting): the lineage is named after the hosting, HTTP-01 through the
    webroot nginx serves. The EAB key goes in a root-only file, never here."""
    argv = [
        settings["certbot_path"],
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--webroot",
        "--webroot-path",
        settings["acme_webroot"],
        "--cert-name",
        model["name"],
        "--server",
        model["acme_directory"],
        "--key-type",
        settings["acme_key_type"],
        "--expand",
        "--force-renewal",
    ]
    if model["acme_email"]:
        argv += ["--email", model["acme_email"]]
    else:
        argv.append("--register-unsafely-without-email")
    return argv + [f"-d={domain}" for domain in model["domains"]]


def batch(plan, settings, todo, run):
    """The new hostings of ``todo`` whose ingress is set up together (tasks/batch.yml):
    present, their root there, no nginx server yet, its comparison successful. For them:
    the ACL entries nginx needs, the self-signed stand-ins to make, the certbot runs and
    the first nginx servers (with the certificate there is now). ``run`` as for
    todo_reasons."""
    exists = run.get("exists") or {}
    files = run.get("files") or {}
    certs = run.get("certificates") or {}
    acls = run.get("acls") or {}
    user = settings["nginx_user"]
    result = {"names": [], "roots": [], "www": [], "selfsigned": [], "acme": [], "servers": []}
    for name in todo:
        model = plan["models"][name]
        group = files.get(name) or {"failed": True}
        if (
            not hm.is_present(model)
            or not exists.get(model["root"])
            or exists.get(model["vhost"])
            or group.get("failed")
            or (
                model["cert_source"] == "files"
                and not (
                    exists.get(model["opts"].get("certificate_file"))
                    and exists.get(model["opts"].get("certificate_key_file"))
                )
            )
        ):
            continue
        result["names"].append(name)
        if (acls.get(model["root"]) or {}).get(user) != "--x":
            result["roots"].append(model["root"])
        if model["static"]:
            result["www"].append(model["www"])
        domains = sorted(model["domains"])
        leaf = certs.get(model["acme_leaf"]) or {}
        own = certs.get(model["selfsigned_cert"]) or {}
        source = model["cert_source"]
        if (source == "selfsigned" and own.get("dns_names") != domains) or (
            source == "acme" and not leaf.get("exists") and not own.get("exists")
        ):
            result["selfsigned"].append(
                {
                    "name": name,
                    "dir": model["selfsigned_dir"],
                    "key": model["selfsigned_key"],
                    "cert": model["selfsigned_cert"],
                    "domains": model["domains"],
                    "days": int(settings["selfsigned_days"]),
                }
            )
        if source == "acme" and leaf.get("dns_names") != domains:
            result["acme"].append(
                {
                    "name": name,
                    "argv": certbot_argv(model, settings),
                    "eab_conf": model["eab_conf"] if model["acme_eab_kid"] else "",
                    "eab_kid": model["acme_eab_kid"],
                    "eab_hmac_key": model["acme_eab_hmac_key"],
                    "server": model["acme_directory"],
                    "webroot": settings["acme_webroot"],
                }
            )
        result["servers"].append(server_group(model, certs))
    return result


def batch_servers(plan, names, issued):
    """The nginx servers of ``names`` once certbot has issued the certificates of
    ``issued``: theirs with the ACME certificate."""
    return [
        server_group(
            plan["models"][name],
            {plan["models"][name]["acme_leaf"]: {"exists": True}} if name in issued else {},
        )
        for name in names
    ]


def move_paths(model, settings):
    """What moves with a hosting to another pod host (playbooks/move.yml) of its ingress:
    the self-signed stand-in and certbot's lineage (the account it names is added by the
    move module). The nginx server is written again on the new host."""
    letsencrypt = settings["letsencrypt_dir"]
    return [
        model["selfsigned_dir"],
        f"{letsencrypt}/live/{model['name']}",
        f"{letsencrypt}/archive/{model['name']}",
        model["renewal_conf"],
    ]
