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
