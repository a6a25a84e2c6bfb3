"""Probes: checked against the policy's bounds, never handed to podman (it would run
httpGet/tcpSocket inside the image with curl/nc), kept normalised in an annotation for the
pod unit's runner (pod_policy.supervise runs them)."""

import pod_policy
import pytest
from podspec_helpers import C0, make_hosting, outcome, patched, shop_pod, shop_policy, to_yaml


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_hosting(tmp_path_factory.mktemp("hosting") / "shop")


def rendered(base, changes, **policy):
    result = pod_policy.render_pod(
        to_yaml(patched(shop_pod(), changes)), shop_policy(base, **policy)
    )
    return result.pod


def test_probes_reach_the_runner_and_not_podman(base):
    pod = rendered(
        base,
        {
            C0 + ".ports": [{"containerPort": 8080, "name": "http"}],
            C0 + ".livenessProbe": {
                "httpGet": {
                    "path": "/healthz",
                    "port": "http",
                    "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
                },
                "periodSeconds": 5,
                "failureThreshold": 2,
            },
            C0 + ".readinessProbe": {"tcpSocket": {"port": 8080}, "successThreshold": 2},
            C0 + ".startupProbe": {"exec": {"command": ["/bin/true"]}, "initialDelaySeconds": 3},
        },
    )
    container = pod["spec"]["containers"][0]
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert pod_policy.pod_probes(pod) == {
        "web": {
            "liveness": {
                "http": {
                    "port": 8080,
                    "path": "/healthz",
                    "scheme": "HTTP",
                    "headers": [["X-Probe", "yes"]],
                },
                "initial_delay": 0,
                "period": 5,
                "timeout": 1,
                "failure_threshold": 2,
                "success_threshold": 1,
            },
            "readiness": {
                "tcp": 8080,
                "initial_delay": 0,
                "period": 10,
                "timeout": 1,
                "failure_threshold": 3,
                "success_threshold": 2,
            },
            "startup": {
                "exec": ["/bin/true"],
                "initial_delay": 3,
                "period": 10,
                "timeout": 1,
                "failure_threshold": 3,
                "success_threshold": 1,
            },
        }
    }
    # the annotation is the engine's own: a tenant's annotations are dropped
    assert pod_policy.pod_probes(rendered(base, {})) == {}


L = C0 + ".livenessProbe"


@pytest.mark.parametrize(
    "probe, policy, expected",
    [
        ({}, {}, [L + ": needs exactly one of exec, httpGet and tcpSocket, got none"]),
        (
            {"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}},
            {},
            [L + ": needs exactly one of exec, httpGet and tcpSocket, got exec, tcpSocket"],
        ),
        (
            {"grpc": {"port": 1}},
            {},
            [L + ".grpc: is not supported; use exec, httpGet or tcpSocket"],
        ),
        ({"exec": {}}, {}, [L + ".exec.command: required"]),
        ({"exec": {"command": []}}, {}, [L + ".exec.command: must not be empty"]),
        (
            {"tcpSocket": {"port": 8080, "host": "10.0.0.1"}},
            {},
            [L + ".tcpSocket.host: is not allowed: a probe connects to the pod itself"],
        ),
        (
            {"httpGet": {"port": "web"}},
            {},
            [
                L + '.httpGet.port: "web" is neither a port number nor the name of one of this'
                " container's ports"
            ],
        ),
        ({"httpGet": {"port": 70000}}, {}, [L + ".httpGet.port: 70000 is not a port (1-65535)"]),
        (
            {"httpGet": {"port": 8080, "path": "no-slash"}},
            {},
            [
                L + '.httpGet.path: "no-slash" is not a request path (a / then at most 1023'
                " printable ASCII characters, no spaces)"
            ],
        ),
        (
            {"httpGet": {"port": 8080, "path": "/a b\r\nX: y"}},
            {},
            [
                L
                + '.httpGet.path: "/a b\\x0d\\x0aX: y" is not a request path (a / then at most 1023'
                " printable ASCII characters, no spaces)"
            ],
        ),
        (
            {"httpGet": {"port": 8080, "scheme": "FTP"}},
            {},
            [L + '.httpGet.scheme: must be HTTP or HTTPS, got "FTP"'],
        ),
        (
            {"httpGet": {"port": 8080, "httpHeaders": [{"name": "Bad Name", "value": "x"}]}},
            {},
            [L + '.httpGet.httpHeaders[0].name: "Bad Name" is not an HTTP header name'],
        ),
        (
            {"httpGet": {"port": 8080, "httpHeaders": [{"name": "X", "value": "a\tb"}]}},
            {},
            [L + ".httpGet.httpHeaders[0].value: must be at most 1024 printable ASCII characters"],
        ),
        (
            {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            {},
            [L + ".periodSeconds: must be an integer from 5 to 3600 (policy probe_limits), got 1"],
        ),
        (
            {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
            {"probe_limits": {"period_min": 2}},
            [],
        ),
        (
            {"tcpSocket": {"port": 8080}, "timeoutSeconds": 30, "periodSeconds": 60},
            {},
            [L + ".timeoutSeconds: must be an integer from 1 to 10 (policy probe_limits), got 30"],
        ),
        (
            {"tcpSocket": {"port": 8080}, "timeoutSeconds": 8, "periodSeconds": 5},
            {},
            [L + ".timeoutSeconds: 8 is longer than periodSeconds (5)"],
        ),
        (
            {"tcpSocket": {"port": 8080}, "failureThreshold": 11},
            {},
            [
                L
                + ".failureThreshold: must be an integer from 1 to 10 (policy probe_limits), got 11"
            ],
        ),
        (
            {"tcpSocket": {"port": 8080}, "successThreshold": 2},
            {},
            [L + ".successThreshold: must be 1 for a liveness probe"],
        ),
        (
            {"tcpSocket": {"port": 8080}, "initialDelaySeconds": "5"},
            {},
            [
                L + ".initialDelaySeconds: must be an integer from 0 to 600 (policy"
                ' probe_limits), got "5"'
            ],
        ),
        ("tcpSocket", {}, [L + ": must be a mapping, got a string"]),
    ],
)
def test_probe_errors_name_the_field(base, probe, policy, expected):
    errors, _warnings = outcome(patched(shop_pod(), {L: probe}), shop_policy(base, **policy))
    assert errors == expected
