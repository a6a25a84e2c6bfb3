"""The tenant's registry logins (auth-<POD>-registry.yaml) and their merge with the
provider's auth.json (pod_policy.registries)."""

import base64
import json

import pod_policy
import pytest

WHAT = "private/container-config/auth-shop-registry.yaml"


def errors_of(text):
    with pytest.raises(pod_policy.PodSpecError) as caught:
        pod_policy.load_registry_logins(text, WHAT)
    return caught.value.errors


def test_the_provider_documentations_format():
    text = (
        "registry.example.com:\n  user: myreaduser\n  password: some_password\n"
        "localhost:5000/team:\n  user: bot\n  password: 'x: y # z'\n"
    )
    assert pod_policy.load_registry_logins(text, WHAT) == {
        "registry.example.com": ("myreaduser", "some_password"),
        "localhost:5000/team": ("bot", "x: y # z"),
    }


@pytest.mark.parametrize("text", ["", "\n", "# only\n#  comments\n", b"# bytes\n"])
def test_a_file_of_comments_has_no_logins(text):
    assert pod_policy.load_registry_logins(text, WHAT) == {}


@pytest.mark.parametrize(
    "text, error",
    [
        ("- a\n", WHAT + ": must map each registry to its login"),
        ("r.io: x\n", WHAT + ': ["r.io"]: must be a mapping with user and password'),
        ("r.io: {user: a}\n", WHAT + ': ["r.io"].password: required'),
        ("r.io: {user: a, password: b, token: c}\n", '["r.io"].token: unknown field'),
        ("r.io: {user: 'a:b', password: c}\n", "user: must not contain ':'"),
        ("r.io: {user: a, password: 5}\n", "password: must be text, got an integer"),
        ("r.io: {user: a, password: ''}\n", "password: must not be empty"),
        ('r.io: {user: a, password: "x\\ny"}\n', "must be one line of printable characters"),
        ("Bad_Host: {user: a, password: b}\n", '"Bad_Host" is not a registry'),
        ("r.io: {user: a, password: &x b}\ns.io: *x\n", WHAT),
        ("r.io: [unclosed\n", WHAT),
    ],
)
def test_errors_name_the_file_and_the_field(text, error):
    errors = errors_of(text)
    assert any(error in line for line in errors), errors
    assert all(line.startswith(WHAT) for line in errors), errors


def test_a_password_never_appears_in_an_error():
    errors = errors_of("r.io: {user: a, password: hunter2, extra: 1}\nBAD: 2\n")
    assert errors and not any("hunter2" in line for line in errors)


def test_too_many_registries():
    text = "".join("r%d.io: {user: a, password: b}\n" % i for i in range(40))
    assert errors_of(text) == [WHAT + ": more than 32 registries"]


def test_the_providers_login_wins_and_the_tenant_is_told_without_secrets():
    provider = pod_policy.provider_auths(json.dumps({"auths": {"r.io": {"auth": "cDpx"}}}))
    logins = {"r.io": ("me", "mine"), "s.io:5000": ("u", "p@ss")}
    merged, warnings = pod_policy.merged_auth(logins, provider)
    assert merged == {
        "auths": {
            "r.io": {"auth": "cDpx"},
            "s.io:5000": {"auth": base64.b64encode(b"u:p@ss").decode()},
        }
    }
    assert warnings == ["r.io: your provider keeps a login for this registry; theirs is used"]
    assert json.loads(pod_policy.auth_json_text(merged)) == merged


@pytest.mark.parametrize("text", ["[]", '{"auths": 1}', "{}"])
def test_a_provider_file_that_is_not_an_auth_json_is_refused(text):
    with pytest.raises(ValueError):
        pod_policy.provider_auths(text)


def test_no_provider_file():
    assert pod_policy.provider_auths("") == {}
