#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pod_spec
short_description: Render a tenant's pod file into a hardened pod under the hosting's policy
version_added: 0.1.0
description:
  - Reads a tenant's Kubernetes C(Pod) YAML file on the managed host, validates it against
    the hosting's system policy and writes the hardened pod (what rootless podman runs) to
    O(dest).
  - The rules are those of the collection's policy engine, also used by C(bin/userpod); see
    C(docs/pod-policy.md) for the tenant rules and C(docs/system-policy.md) for the policy keys.
  - O(dest) is only written when its content would change, through a temporary file and an
    atomic move. When the tenant's file is invalid the module fails with every error and
    leaves O(dest) untouched.
  - Host paths are checked on the managed host (they must exist inside the hosting and be
    reached through no symlink), so the module must run there.
author:
  - webhosting.pods contributors
options:
  src:
    description:
      - Path of the tenant's pod file on the managed host.
    type: path
    required: true
  policy:
    description:
      - The system policy as a dictionary (the keys of C(system.yaml)).
      - Mutually exclusive with O(policy_file); one of them is required.
    type: dict
  policy_file:
    description:
      - Path of the system policy YAML file on the managed host.
      - Mutually exclusive with O(policy); one of them is required.
    type: path
  dest:
    description:
      - Where to write the rendered pod.
    type: path
    required: true
  strict:
    description:
      - Treat warnings (ignored fields, removed host ports, ...) as errors.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: In check mode the module validates and reports C(changed) without writing.
  diff_mode:
    support: full
    description: Returns the rendered file before and after.
  idempotent:
    support: full
    description: A second run with the same inputs reports no change.
notes:
  - The module does not start or restart the pod; a handler or C(userpod start) does.
"""

EXAMPLES = r"""
- name: Render the tenant's pod under the hosting's policy
  webhosting.pods.pod_spec:
    src: /srv/hostings/shop/private/container-config/pod.yaml
    policy_file: /etc/webhosting-pods/hostings/shop/system.yaml
    dest: /etc/webhosting-pods/hostings/shop/pod.rendered.yaml
    owner: root
    group: root
    mode: "0644"

- name: Render with an inline policy, refusing any warning
  webhosting.pods.pod_spec:
    src: /srv/hostings/shop/private/container-config/pod.yaml
    policy:
      name: shop
      volumes_base_dir: /srv/hostings/shop
      volumes_containers_gid_share: true
      container_env_dir: /srv/hostings/shop
      tmp_dir: /srv/hostings/shop/tmp
      socket_ports:
        8080:
          dir: /srv/hostings/shop/tmp/run
      exposed_ports: []
      pidfile: /srv/hostings/shop/pod.pid
      default_run_as_user: 1000
    dest: /etc/webhosting-pods/hostings/shop/pod.rendered.yaml
    strict: true
  register: __hosting_pod
"""

RETURN = r"""
rendered:
  description: The hardened pod written to O(dest).
  returned: success
  type: dict
  sample:
    apiVersion: v1
    kind: Pod
    metadata:
      name: shop
    spec:
      hostname: shop
      restartPolicy: Always
      containers:
        - name: web
          image: docker.io/library/nginx:latest
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
            privileged: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            runAsUser: 1000
            runAsGroup: 1000
warnings_list:
  description:
    - "The engine's warnings, one C(field.path: message) line each. They are also emitted as
      Ansible warnings."
  returned: always
  type: list
  elements: str
  sample:
    - "spec.containers[0].resources: ignored"
errors:
  description: "Every error found, one C(field.path: problem) line each; empty on success."
  returned: always
  type: list
  elements: str
  sample:
    - "spec.volumes[1].hostPath.path: /data/x does not exist in the hosting"
dest:
  description: The destination path.
  returned: always
  type: str
  sample: /etc/webhosting-pods/hostings/shop/pod.rendered.yaml
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import (
    MAX_DOCUMENT_BYTES,
    PodSpecError,
    dump_pod,
    load_policy,
    render_pod,
)


def _read(path, what):
    """Bytes of a file, or (None, message)."""
    try:
        if os.path.isdir(path):
            return None, "%s: cannot read the %s: is a directory" % (path, what)
        with open(path, "rb") as handle:
            return handle.read(MAX_DOCUMENT_BYTES + 1), None
    except (IOError, OSError) as exc:
        return None, "%s: cannot read the %s: %s" % (path, what, to_native(exc.strerror or exc))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            policy=dict(type="dict"),
            policy_file=dict(type="path"),
            dest=dict(type="path", required=True),
            strict=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("policy", "policy_file")],
        required_one_of=[("policy", "policy_file")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    src = module.params["src"]
    dest = module.params["dest"]
    result = dict(changed=False, dest=dest, errors=[], warnings_list=[])

    if module.params["policy_file"] is not None:
        policy_source, problem = _read(module.params["policy_file"], "system policy")
        if problem:
            module.fail_json(msg=problem, errors=[problem], **_without_errors(result))
    else:
        policy_source = module.params["policy"]
    pod_source, problem = _read(src, "pod file")
    if problem:
        module.fail_json(msg=problem, errors=[problem], **_without_errors(result))

    try:
        policy = load_policy(policy_source)
        rendered = render_pod(pod_source, policy, strict=module.params["strict"])
    except PodSpecError as exc:
        result["warnings_list"] = exc.warnings
        count = len(exc.errors)
        module.fail_json(
            msg="%s: %d error%s in the pod spec or the policy:\n%s"
            % (src, count, "" if count == 1 else "s", "\n".join(exc.errors)),
            errors=exc.errors,
            **_without_errors(result),
        )

    for warning in rendered.warnings:
        module.warn(warning)
    result["warnings_list"] = rendered.warnings
    result["rendered"] = rendered.pod
    after = dump_pod(rendered.pod)

    before = None
    if os.path.exists(dest):
        if os.path.isdir(dest):
            module.fail_json(msg="%s: is a directory" % dest, **result)
        try:
            with open(dest, "rb") as handle:
                before = handle.read().decode("utf-8", "replace")
        except (IOError, OSError) as exc:
            module.fail_json(msg="%s: cannot read: %s" % (dest, to_native(exc)), **result)

    changed = before != after
    if changed and not module.check_mode:
        directory = os.path.dirname(os.path.abspath(dest))
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".pod_spec.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(after.encode("utf-8"))
        except (IOError, OSError) as exc:
            module.fail_json(msg="%s: cannot write: %s" % (dest, to_native(exc)), **result)
        module.atomic_move(temporary, dest, unsafe_writes=module.params["unsafe_writes"])

    if os.path.exists(dest):
        file_args = module.load_file_common_arguments(module.params, path=dest)
        changed = module.set_fs_attributes_if_different(file_args, changed)

    result["changed"] = changed
    if module._diff:
        result["diff"] = dict(
            before=before or "",
            after=after,
            before_header="%s (before)" % dest,
            after_header="%s (after)" % dest,
        )
    module.exit_json(**result)


def _without_errors(result):
    return dict((key, value) for key, value in result.items() if key != "errors")


if __name__ == "__main__":
    main()
