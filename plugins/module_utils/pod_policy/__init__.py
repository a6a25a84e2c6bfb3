# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy engine for tenant pod specs (webhosting.pods).

A tenant writes a Kubernetes ``Pod`` in YAML; the hosting's system policy decides what of it
runs and how.  :func:`render_pod` turns the tenant's text into a hardened Pod (what rootless
podman runs) plus warnings, or raises :class:`PodSpecError` carrying *every* error at once.

This package is deliberately self-contained: Python 3.9+, the standard library and PyYAML
only, no Ansible import, relative imports between its modules.  It is used by the
``webhosting.pods.pod_spec`` module, by ``bin/userpod`` and is installed on pod hosts as
``/usr/local/lib/webhosting-pods/pod_policy/``.  What this file exports is its public API;
the modules behind it:

- ``constants``: limits and the closed sets of accepted values;
- ``messages``: :class:`PodSpecError` and the helpers that build its lines;
- ``yamlsafe``: safe loading of one plain YAML document, YAML bombs refused;
- ``values``: checkers for single fields, image references, CPU and memory amounts;
- ``policy``: :func:`load_policy`, the system policy validated and normalised;
- ``hostfiles``: hostPath directories and env files, no symlink followed;
- ``security``: the tenant's securityContext;
- ``render`` and ``containers``: :func:`render_pod`, the pod and its containers;
- ``probes``: the containers' probes, checked against the policy's bounds and kept for the
  runner (never given to podman);
- ``registries``: the tenant's registry logins merged with the provider's (auth.json);
- ``dump``: :func:`dump_pod`, the rendered Pod as YAML text;
- ``pinning``: the runner's hostPath pinning in podman's namespace (no check-then-use
  window between rendering and podman's mount);
- ``supervise``: the pod unit's supervisor (the tenant's restartPolicy with back-off, a
  crash loop fails the unit).

Every error and warning is one line ``FIELD.PATH: problem``, for example
``spec.volumes[1].hostPath.path: /data/x does not exist in the hosting``.

The rules are documented for tenants in ``docs/pod-policy.md`` and the policy keys for
administrators in ``docs/system-policy.md``.
"""

from .constants import MAX_DOCUMENT_BYTES, MEMORY_VOLUMES_ANNOTATION
from .dump import dump_pod
from .hostfiles import kept_env_changes, last_valid_env_dir, tenant_env_snapshot, with_env_dir
from .messages import PodSpecError
from .pinning import PinError, host_path_volumes, pin, pinned_pod, podman_pod
from .policy import load_policy
from .probes import pod_probes
from .registries import (
    auth_json_text,
    load_registry_logins,
    login_errors,
    merged_auth,
    provider_auths,
)
from .render import RenderResult, memory_volumes, render_pod
from .supervise import Podman as SupervisedPodman
from .supervise import (
    SuperviseError,
    Supervisor,
    append_report,
    pod_network_argv,
    run_supervisor,
    supervisor_from_spec,
    supervisor_spec,
)
from .supervise import notify as sd_notify
from .values import _memory_bytes as memory_bytes

__all__ = [
    "PodSpecError",
    "RenderResult",
    "load_policy",
    "render_pod",
    "dump_pod",
    "memory_volumes",
    "pod_probes",
    "memory_bytes",
    "PinError",
    "host_path_volumes",
    "pinned_pod",
    "pin",
    "podman_pod",
    "Supervisor",
    "SupervisedPodman",
    "SuperviseError",
    "sd_notify",
    "append_report",
    "supervisor_spec",
    "supervisor_from_spec",
    "run_supervisor",
    "supervisor_script",
    "pod_network_argv",
    "tenant_env_snapshot",
    "last_valid_env_dir",
    "kept_env_changes",
    "with_env_dir",
    "load_registry_logins",
    "login_errors",
    "provider_auths",
    "merged_auth",
    "auth_json_text",
    "MAX_DOCUMENT_BYTES",
    "MEMORY_VOLUMES_ANNOTATION",
]


def supervisor_script():
    """The path of ``supervise.py`` when it is a file python3 can run as a script (the
    lean supervisor of ``userpod play --service``), else None (the engine inside the
    one-file userpod's archive)."""
    import os

    from . import supervise

    path = getattr(supervise, "__file__", None)
    return path if path and os.path.isfile(path) else None
