"""The ingress model: a hosting's nginx server and certificates, on the paths the hosting
role publishes."""

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils import hosting_model as hm
from ansible_collections.webhosting.pods.plugins.module_utils import ingress_model as im

SETTINGS = {
    "vhost_dir": "/etc/nginx/webhosting-pods.d",
    "nginx_user": "www-data",
    "certificate_source": "acme",
    "certificate_dir": "/etc/webhosting-pods/ingress/certs",
    "letsencrypt_dir": "/etc/letsencrypt",
    "acme_directory": "https://ca.test/dir",
    "acme_email": "",
    "acme_eab_kid": "",
    "acme_eab_hmac_key": "",
    "keep_certificate_on_removal": True,
    "upstream_keepalive": 0,
    "upstream_keepalive_timeout": "4s",
    "client_max_body_size": "64m",
}
PUBLISHED = {
    "shop": {
        "root": "/data/shop",
        "www": "/data/shop/www",
        "sockets": {"8080": "/data/shop/tmp/run/8080", "9000": "/data/shop/tmp/run/9000"},
    }
}


def hosting(**extra):
    entry = {"name": "shop", "uid": 10001, "gid": 10001, "domains": ["b.test", "a.test"]}
    entry.update(extra)
    return entry


def test_the_socket_is_the_one_the_hosting_published():
    model = im.layout(hosting(), SETTINGS, PUBLISHED)
    assert model["upstream_port"] == 8080
    assert model["upstream_socket"] == "/data/shop/tmp/run/8080"
    model = im.layout(hosting(ingress={"upstream_port": 9000}), SETTINGS, PUBLISHED)
    assert model["upstream_socket"] == "/data/shop/tmp/run/9000"
    assert model["ports"] == [8080, 9000]


def test_hosting_model_and_ingress_agree_on_the_socket():
    settings = {
        "base_dir": "/data",
        "state_base_dir": "/s",
        "config_dir": "/c",
        "socket_ports": [8080],
        "policy_defaults": {},
    }
    published = {"shop": hm.published(hm.layout(hosting(), settings))}
    assert (
        im.layout(hosting(), SETTINGS, published)["upstream_socket"]
        == "/run/webhosting-pods/shop/8080"
    )


def test_keepalive_to_the_pod_is_off_unless_asked_for():
    model = im.layout(hosting(), SETTINGS, PUBLISHED)
    assert (model["keepalive"], model["keepalive_timeout"]) == (0, "4s")
    assert model["upstream_name"] == "webhosting_pods_shop"
    socket = model["upstream_socket"]
    assert model["proxy_pass"] == f"http://unix:{socket}:"
    assert model["proxy_connection"] == "$webhosting_pods_connection_upgrade"
    settings = {**SETTINGS, "upstream_keepalive": "8", "upstream_keepalive_timeout": "3s"}
    model = im.layout(hosting(), settings, PUBLISHED)
    assert model["keepalive"] == 8
    assert model["proxy_pass"] == "http://webhosting_pods_shop"
    assert model["proxy_connection"] == "$webhosting_pods_connection_keepalive"
    model = im.layout(
        hosting(ingress={"upstream_keepalive": 0, "upstream_keepalive_timeout": "500ms"}),
        settings,
        PUBLISHED,
    )
    assert (model["keepalive"], model["keepalive_timeout"]) == (0, "500ms")


@pytest.mark.parametrize(
    ("ingress", "settings", "message"),
    [
        ({"upstream_keepalive": -1}, {}, "ingress.upstream_keepalive: -1 is not a number"),
        ({"upstream_keepalive": "many"}, {}, "ingress.upstream_keepalive: 'many' is not"),
        ({"upstream_keepalive": True}, {}, "ingress.upstream_keepalive: True is not"),
        (
            {"upstream_keepalive": 257},
            {},
            "ingress.upstream_keepalive: 257 is not a number of connections from 0 \\(off\\) to",
        ),
        ({}, {"upstream_keepalive": "8 ; x"}, "ingress_upstream_keepalive: '8 ; x' is not"),
        (
            {"upstream_keepalive_timeout": "4s; proxy_pass x"},
            {},
            "ingress.upstream_keepalive_timeout: '4s; proxy_pass x' is not an nginx time",
        ),
        ({}, {"upstream_keepalive_timeout": "soon"}, "ingress_upstream_keepalive_timeout: 'soon'"),
    ],
)
def test_a_bad_keepalive_setting_is_named(ingress, settings, message):
    with pytest.raises(hm.HostingError, match=f"^hosting shop: {message}"):
        im.layout(hosting(ingress=ingress), {**SETTINGS, **settings}, PUBLISHED)


@pytest.mark.parametrize(
    ("entry", "settings", "message"),
    [
        ({"domains": []}, {}, "domains: a hosting needs at least one domain"),
        (
            {"ingress": {"certificate_source": "ftp"}},
            {},
            "ingress.certificate_source: 'ftp' is not",
        ),
        ({}, {"certificate_source": "self"}, "ingress_certificate_source: 'self' is not one of"),
        (
            {"ingress": {"certificate_source": "files", "certificate_file": "/c.crt"}},
            {},
            "ingress.certificate_key_file: is needed with certificate_source files",
        ),
        (
            {"ingress": {"upstream_port": 8081}},
            {},
            "ingress.upstream_port: 8081 is not one of the hosting's socket ports \\[8080, 9000\\]",
        ),
        (
            {"ingress": {"static_paths": [{"prefix": "/s/"}, {"prefix": "s/"}]}},
            {},
            "ingress.static_paths\\[1\\].prefix: 's/' is not an absolute URL path",
        ),
        (
            {"ingress": {"static_paths": [{"prefix": "/s/ ; root /"}]}},
            {},
            "ingress.static_paths\\[0\\].prefix: '/s/ ; root /' is not",
        ),
        (
            {"ingress": {"static_paths": [{"prefix": "/s/", "dir": "/etc"}]}},
            {},
            "ingress.static_paths\\[0\\].dir: '/etc' is not a relative path below www/",
        ),
        (
            {"ingress": {"static_paths": [{"prefix": "/s/", "dir": "a/../.."}]}},
            {},
            "ingress.static_paths\\[0\\].dir: 'a/../..' goes up with '..'",
        ),
        ({"ingress": {"static_paths": "/s/"}}, {}, "ingress.static_paths: is not a list"),
        ({"ingress": {"client_max_body_size": "1g;"}}, {}, "ingress.client_max_body_size: '1g;'"),
        ({}, {"client_max_body_size": "lots"}, "ingress_client_max_body_size: 'lots' is not an"),
        (
            {"ingress": {"acme_directory": "http://ca.test/dir"}},
            {},
            "ingress.acme_directory: 'http://ca.test/dir' is not an https URL",
        ),
        (
            {},
            {"acme_eab_kid": "kid"},
            "ingress_acme_eab_kid, ingress_acme_eab_hmac_key: give both .* or neither",
        ),
    ],
)
def test_a_bad_ingress_setting_is_named(entry, settings, message):
    with pytest.raises(hm.HostingError, match=f"^hosting shop: {message}"):
        im.layout(hosting(**entry), {**SETTINGS, **settings}, PUBLISHED)


def test_good_ingress_settings_pass():
    opts = {
        "certificate_source": "files",
        "certificate_file": "/c.crt",
        "certificate_key_file": "/c.key",
        "static_paths": [{"prefix": "/static/", "dir": "public/static"}, {"prefix": "/"}],
        "client_max_body_size": "512M",
        "acme_eab_kid": "kid",
        "acme_eab_hmac_key": "key",
    }
    assert im.layout(hosting(ingress=opts), SETTINGS, PUBLISHED)["cert_source"] == "files"
    # an absent hosting needs no domains any more
    assert im.layout(hosting(domains=[], state="absent"), SETTINGS, PUBLISHED)["domains"] == []


def test_a_hosting_that_published_nothing_is_an_error():
    with pytest.raises(hm.HostingError, match="hosting blog: the hosting role published no paths"):
        im.layout(hosting(name="blog"), SETTINGS, PUBLISHED)


@pytest.mark.parametrize(
    ("source", "leaf", "expected"),
    [
        (
            "acme",
            {"exists": True},
            ("/etc/letsencrypt/live/shop/fullchain.pem", "/etc/letsencrypt/live/shop/privkey.pem"),
        ),
        (
            "acme",
            {"exists": False},
            (
                "/etc/webhosting-pods/ingress/certs/shop/selfsigned.crt",
                "/etc/webhosting-pods/ingress/certs/shop/selfsigned.key",
            ),
        ),
        (
            "acme",
            {"exists": True, "error": "unreadable"},
            (
                "/etc/webhosting-pods/ingress/certs/shop/selfsigned.crt",
                "/etc/webhosting-pods/ingress/certs/shop/selfsigned.key",
            ),
        ),
        ("files", {}, ("/x.crt", "/x.key")),
    ],
)
def test_certificate_choice(source, leaf, expected):
    opts = {
        "certificate_source": source,
        "certificate_file": "/x.crt",
        "certificate_key_file": "/x.key",
    }
    model = im.layout(hosting(ingress=opts), SETTINGS, PUBLISHED)
    group = im.server_group(model, {model["acme_leaf"]: leaf})
    assert (group["vars"]["__ingress_cert"], group["vars"]["__ingress_key"]) == expected
    assert group["paths"][0]["template"] == "vhost.conf.j2"


def test_probe_and_plan():
    hostings = [hosting(ingress={"static_paths": [{"prefix": "/s/"}]})]
    plan = im.plan(hostings, SETTINGS, PUBLISHED, [])
    assert {"path": "/data/shop/www", "user": "www-data", "default": True} in plan["acls"]
    assert plan["certificates"] == [
        "/etc/letsencrypt/live/shop/cert.pem",
        "/etc/webhosting-pods/ingress/certs/shop/selfsigned.crt",
    ]
    assert "/etc/nginx/webhosting-pods.d/shop.conf" in plan["exists"]


def converged(model):
    return {
        "exists": {model["root"]: True},
        "files": {"shop": {"actions": {}}},
        "acls": {model["root"]: {"www-data": "--x"}},
        "certificates": {model["acme_leaf"]: {"exists": True, "dns_names": ["a.test", "b.test"]}},
    }


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r, m: r["exists"].clear(), "new hosting"),
        (lambda r, m: r["files"]["shop"]["actions"].update(x="updated"), "nginx server differs"),
        (lambda r, m: r["acls"].clear(), "ACL of the hosting root"),
        (
            lambda r, m: r["certificates"][m["acme_leaf"]].update(dns_names=["a.test"]),
            "ACME certificate missing or for other names",
        ),
    ],
)
def test_todo(mutate, reason):
    model = im.layout(hosting(), SETTINGS, PUBLISHED)
    run = converged(model)
    assert im.todo_reasons(model, SETTINGS, run) == []
    mutate(run, model)
    assert reason in im.todo_reasons(model, SETTINGS, run)


def test_todo_absent():
    model = im.layout(
        hosting(state="absent", ingress={"keep_certificate": False}), SETTINGS, PUBLISHED
    )
    run = {"exists": {model["vhost"]: True, model["renewal_conf"]: True}}
    assert im.todo_reasons(model, SETTINGS, run) == [
        "/etc/nginx/webhosting-pods.d/shop.conf left",
        "/etc/letsencrypt/renewal/shop.conf left",
    ]


BATCH_SETTINGS = dict(
    SETTINGS,
    certbot_path="/usr/bin/certbot",
    acme_webroot="/var/lib/webhosting-pods/acme",
    acme_key_type="ecdsa",
    selfsigned_days=30,
)


def new_run(model):
    """The state of a new hosting: its root there, no server, no certificate."""
    return {
        "exists": {model["root"]: True},
        "files": {"shop": {"actions": {model["vhost"]: "created"}}},
        "acls": {},
        "certificates": {},
    }


def test_batch_sets_up_a_new_hosting_together():
    plan = im.plan(
        [hosting(ingress={"static_paths": [{"prefix": "/s/"}]})], BATCH_SETTINGS, PUBLISHED, []
    )
    model = plan["models"]["shop"]
    todo = {"shop": im.todo_reasons(model, BATCH_SETTINGS, new_run(model))}
    batch = im.batch(plan, BATCH_SETTINGS, todo, new_run(model))
    assert batch["names"] == ["shop"]
    assert batch["roots"] == ["/data/shop"] and batch["www"] == ["/data/shop/www"]
    assert batch["selfsigned"][0]["domains"] == ["b.test", "a.test"]
    assert batch["selfsigned"][0]["days"] == 30
    argv = batch["acme"][0]["argv"]
    # the same command line tasks/acme.yml runs for one hosting
    assert argv[:2] == ["/usr/bin/certbot", "certonly"]
    assert argv[argv.index("--cert-name") + 1] == "shop"
    assert argv[argv.index("--server") + 1] == "https://ca.test/dir"
    assert "--register-unsafely-without-email" in argv
    assert argv[-2:] == ["-d=b.test", "-d=a.test"]
    assert batch["acme"][0]["eab_conf"] == ""
    # the first server serves the self-signed stand-in, the second the ACME certificate
    first = batch["servers"][0]["vars"]
    assert first["__ingress_cert"] == model["selfsigned_cert"]
    (second,) = im.batch_servers(plan, ["shop"], ["shop"])
    assert second["vars"]["__ingress_cert"] == model["acme_cert"]
    (kept,) = im.batch_servers(plan, ["shop"], [])
    assert kept["vars"]["__ingress_cert"] == model["selfsigned_cert"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r, m: r["exists"].update({m["vhost"]: True}),  # a server exists: one at a time
        lambda r, m: r["exists"].clear(),  # no root (check mode of a new host)
        lambda r, m: r["files"].update(shop={"failed": True, "msg": "template"}),
    ],
)
def test_batch_leaves_other_hostings_to_the_one_at_a_time_path(mutate):
    plan = im.plan([hosting()], BATCH_SETTINGS, PUBLISHED, [])
    model = plan["models"]["shop"]
    run = new_run(model)
    mutate(run, model)
    assert im.batch(plan, BATCH_SETTINGS, {"shop": ["x"]}, run)["names"] == []


def test_batch_keeps_an_existing_stand_in_and_passes_the_eab_key_apart():
    h = hosting(
        ingress={"acme_eab_kid": "kid", "acme_eab_hmac_key": "hmac", "acme_email": "a@b.test"}
    )
    plan = im.plan([h], BATCH_SETTINGS, PUBLISHED, [])
    model = plan["models"]["shop"]
    run = new_run(model)
    run["certificates"][model["selfsigned_cert"]] = {
        "exists": True,
        "dns_names": ["a.test", "b.test"],
    }
    batch = im.batch(plan, BATCH_SETTINGS, {"shop": ["x"]}, run)
    assert batch["selfsigned"] == []
    (acme,) = batch["acme"]
    assert acme["eab_conf"] == model["eab_conf"] and acme["eab_kid"] == "kid"
    assert "hmac" not in acme["argv"] and "kid" not in acme["argv"]
    assert acme["argv"][acme["argv"].index("--email") + 1] == "a@b.test"
