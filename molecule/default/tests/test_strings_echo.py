"""Text reaches the container unchanged, checked through podman itself: the tenant (alpha,
over SFTP) adds a container whose environment and arguments are values YAML 1.1 readers
(podman's go-yaml) would turn into booleans, numbers or nothing. The container prints its
arguments into the tenant's container log, `podman exec printenv` reads its environment,
and both must be exactly the text of the pod file. The pod file is restored at the end.
"""

import shlex
import time

import yaml

NAME = "alpha"
ROOT = f"/srv/hostings/{NAME}"
POD = f"/private/container-config/pod-{NAME}.yaml"
WORK = "/root/strings-work"
TRICKY = [
    "Y",
    "n",
    "yes",
    "No",
    "off",
    "ON",
    "true",
    "0o17",
    "017",
    "08",
    "1:30",
    "1_000",
    "0x1F",
    "1e3",
    ".inf",
    "-.nan",
    "~",
    "null",
    "",
    " spaced ",
    "#hash",
    "a: b",
    "- item",
    "{x: 1}",
    "[1]",
    "'single'",
    '"double"',
    "tab\there",
    "ünïcödé ✓",
    "=eq",
    "2026-12-02",
    "<<",
]


def tenant(name, command):
    """A shell line run as the hosting user, with podman's environment of its units."""
    env = [
        f"USER={name}",
        f"XDG_RUNTIME_DIR=/run/user/$(id -u {name})",
        f"XDG_CONFIG_HOME=/var/lib/webhosting-pods/state/{name}/config",
        f"HOME=/var/lib/webhosting-pods/users/{name}",
        "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
    ]
    return (
        f"setpriv --reuid={name} --regid={name} --init-groups env {' '.join(env)}"
        f" /bin/sh -c {shlex.quote(command)}"
    )


def test_tricky_text_reaches_the_container_unchanged(lab, sftp, wait_until):
    original = lab.file(ROOT + POD).content_string
    spec = yaml.safe_load(original)
    run = f"run-{time.time_ns()}"  # this start's output, not an earlier one's
    script = (
        'run=$1; shift; for a in "$@"; do printf "ARG[%s]\\n" "$a"; done;'
        ' echo "ARGS-END $run"; exec sleep 100000'
    )
    spec["spec"]["containers"].append(
        {
            "name": "echo",
            "image": spec["spec"]["containers"][0]["image"],
            "command": ["/bin/sh", "-c", script, "sh", run, *TRICKY],
            "env": [{"name": f"V{i}", "value": value} for i, value in enumerate(TRICKY)],
        }
    )
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    lab.check_output(f"mkdir -p {WORK} && printf %s {shlex.quote(text)} > {WORK}/pod.yaml")
    lab.check_output(f"chmod 0644 {WORK}/pod.yaml && : > {WORK}/empty")
    log = f"{ROOT}/logs/{NAME}-{NAME}.log"
    try:
        res = sftp(
            lab,
            NAME,
            1,
            [
                f"put {WORK}/pod.yaml {POD}.new",
                f"rename {POD}.new {POD}",
                f"put {WORK}/empty /scripts/pod_restart/pod_restart.run",
            ],
        )
        assert res.rc == 0, res.stderr
        wait_until(
            "the echo container's arguments in the log",
            lambda: f"ARGS-END {run}" in lab.run(f"cat {log}").stdout,
            120,
            1,
        )
        # k8s-file lines: TIME STREAM FLAG TEXT; the ARG lines just before this run's end
        texts = [
            line.split(" ", 3)[3]
            for line in lab.file(log).content_string.splitlines()
            if line.count(" ") >= 3
        ]
        end = texts.index(f"ARGS-END {run}")
        printed = [text for text in texts[:end] if text.startswith("ARG[")]
        assert printed[-len(TRICKY) :] == [f"ARG[{value}]" for value in TRICKY]
        for i, value in enumerate(TRICKY):
            script = shlex.quote(f'printf "%s|" "$V{i}"')
            res = lab.run(tenant(NAME, f"podman exec {NAME}-echo /bin/sh -c {script}"))
            assert res.rc == 0, (i, value, res.stderr)
            assert res.stdout == value + "|", (i, value, res.stdout)
    finally:
        lab.check_output(f"printf %s {shlex.quote(original)} > {WORK}/pod.yaml")
        sftp(
            lab,
            NAME,
            1,
            [
                f"put {WORK}/pod.yaml {POD}",
                f"put {WORK}/empty /scripts/pod_restart/pod_restart.run",
            ],
        )
        wait_until(
            "the echo container gone",
            lambda: lab.run(tenant(NAME, f"podman container exists {NAME}-echo")).rc == 1,
            120,
            1,
        )
        wait_until(
            "alpha serving again",
            lambda: (
                lab.run(
                    f"curl -sS --max-time 3 --unix-socket /run/webhosting-pods/{NAME}/8080 http://pod/version"
                ).rc
                == 0
            ),
            120,
            1,
        )
