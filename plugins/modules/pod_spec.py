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
      - Required unless O(renders) is given.
    type: path
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
      - Required unless O(renders) is given.
    type: path
  renders:
    description:
      - Many pods in one call (one per hosting of a pod host), each with its own O(src),
        O(policy), O(dest) and O(owner), O(group), O(mode). A pod that does not validate
        (or cannot be read or written) is reported in RV(pods) under its name with its
        errors, and the others are still rendered; the module itself does not fail for it.
      - Mutually exclusive with O(src), O(dest), O(policy) and O(policy_file).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the render in RV(pods).
        type: str
        required: true
      src:
        description: As O(src).
        type: path
        required: true
      policy:
        description: As O(policy).
        type: dict
        required: true
      dest:
        description: As O(dest).
        type: path
        required: true
      last_valid:
        description:
          - Where the last valid version of O(renders[].src) is kept (written, with the owner
            and group of O(renders[].dest) and mode 0600, whenever the pod file validates).
          - When O(renders[].src) does not validate, this copy is rendered instead, checked
            again with the current policy and file system, and the result says
            V(fallback=true) with the tenant's errors in V(invalid); when the copy does not
            validate either (or there is none), the render fails (V(msg)), V(last_valid)
            telling whether there was a copy.
        type: path
      owner:
        description: Owner of O(renders[].dest) (name or number).
        type: str
      group:
        description: Group of O(renders[].dest) (name or number).
        type: str
      mode:
        description: Mode of O(renders[].dest).
        type: raw
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
  - O(dest) is always replaced by a rename in its directory; O(unsafe_writes) has no effect.
"""

EXAMPLES = r"""
- name: Render the tenant's pod under the hosting's policy
  webhosting.pods.pod_spec:
    src: /srv/hostings/shop/private/container-config/pod-shop.yaml
    policy_file: /etc/webhosting-pods/hostings/shop/system.yaml
    dest: /etc/webhosting-pods/hostings/shop/pod.rendered.yaml
    owner: root
    group: root
    mode: "0644"

- name: Render the pods of two hostings in one call
  webhosting.pods.pod_spec:
    renders:
      - name: shop
        src: /srv/hostings/shop/private/container-config/pod-shop.yaml
        policy: "{{ shop_policy }}"
        dest: /var/lib/webhosting-pods/state/shop/pod.yaml
        owner: "10001"
        group: "10001"
        mode: "0600"
      - name: blog
        src: /srv/hostings/blog/private/container-config/pod-blog.yaml
        policy: "{{ blog_policy }}"
        dest: /var/lib/webhosting-pods/state/blog/pod.yaml
  register: __renders

- name: Render with an inline policy, refusing any warning
  webhosting.pods.pod_spec:
    src: /srv/hostings/shop/private/container-config/pod-shop.yaml
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
pods:
  description:
    - Per render of O(renders), V(changed), V(dest) and RV(errors) (empty when it
      rendered), and V(msg) when it did not; V(fallback), V(invalid) and V(invalid_msg)
      when the last valid pod file was rendered instead (see O(renders[].last_valid)).
    - Not called C(results), which Ansible reserves for the items of a loop.
  returned: when O(renders) is given
  type: dict
  sample:
    shop: {"changed": false, "dest": "/var/lib/webhosting-pods/state/shop/pod.yaml", "errors": []}
dest:
  description: The destination path.
  returned: when O(src) is given
  type: str
  sample: /etc/webhosting-pods/hostings/shop/pod.rendered.yaml
"""

import errno
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.webhosting.pods.plugins.module_utils.batch import BatchError, run_batch
from ansible_collections.webhosting.pods.plugins.module_utils.fileio import (
    group_id,
    octal_mode,
    open_nofollow,
    read_nofollow,
    user_id,
    write_atomic,
)
from ansible_collections.webhosting.pods.plugins.module_utils.pod_policy import (
    MAX_DOCUMENT_BYTES,
    PodSpecError,
    dump_pod,
    kept_env_changes,
    last_valid_env_dir,
    load_policy,
    render_pod,
    tenant_env_snapshot,
    with_env_dir,
)


def _read(path, what):
    """Bytes of a file, or (None, message). The tenant may replace their pod file (its
    directory is theirs to write): a symlink there is refused, not followed, and a FIFO
    or device is never read."""
    try:
        with open_nofollow(path) as fd:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None, "%s: cannot read the %s: not a regular file" % (path, what)
            chunks, size = [], 0
            while size <= MAX_DOCUMENT_BYTES:
                chunk = os.read(fd, MAX_DOCUMENT_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks), None
    except (IOError, OSError) as exc:
        if exc.errno == errno.ELOOP:
            return None, "%s: cannot read the %s: is a symlink, not a file" % (path, what)
        return None, "%s: cannot read the %s: %s" % (path, what, to_native(exc.strerror or exc))


class _Failed(Exception):
    """One render that did not succeed: its message and the result so far."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def _render(module, src, policy_source, dest, file_args, strict, keep=None, env_dir=None):
    """Validate, render and write one pod. Returns the result dict (without diff text
    unless asked) and the before/after texts; raises _Failed. With ``keep``, a valid pod
    file is also copied there (the last valid input, which the pod unit falls back to),
    and the tenant's env files it was valid with beside it; ``env_dir``: read the
    tenant's env files from there (the kept ones, for the last valid input)."""
    result = dict(changed=False, dest=dest, errors=[], warnings_list=[])
    pod_source, problem = _read(src, "pod file")
    if problem:
        raise _Failed(problem, dict(result, errors=[problem]))
    try:
        policy = load_policy(policy_source)
        if env_dir is not None:
            policy = with_env_dir(policy, env_dir)
        rendered = render_pod(pod_source, policy, strict=strict)
    except PodSpecError as exc:
        count = len(exc.errors)
        raise _Failed(
            "%s: %d error%s in the pod spec or the policy:\n%s"
            % (src, count, "" if count == 1 else "s", "\n".join(exc.errors)),
            dict(result, errors=exc.errors, warnings_list=exc.warnings),
        ) from None
    result["warnings_list"] = rendered.warnings
    result["rendered"] = rendered.pod
    after = dump_pod(rendered.pod)

    before = None
    try:
        dest_mode = os.lstat(dest).st_mode
    except FileNotFoundError:
        dest_mode = None
    if dest_mode is not None and stat.S_ISDIR(dest_mode):
        raise _Failed("%s: is a directory" % dest, result)
    if dest_mode is not None and stat.S_ISREG(dest_mode):
        try:
            # the state directory is the hosting user's: its last output, never a link
            # (anything else there, a link included, is replaced by the rename below)
            before = read_nofollow(dest).decode("utf-8", "replace")
        except (IOError, OSError) as exc:
            raise _Failed("%s: cannot read: %s" % (dest, to_native(exc)), result) from None

    changed = before != after
    if changed and not module.check_mode:
        # The mode (octal) and, as root, the owner are set before the rename; the rest (a
        # symbolic mode, an unknown name, SELinux) is the replaced file's until
        # set_fs_attributes_if_different below, which also reports what cannot be set.
        root = os.geteuid() == 0
        try:
            write_atomic(
                dest,
                after,
                mode=octal_mode(file_args["mode"]),
                owner=user_id(file_args["owner"]) if root else -1,
                group=group_id(file_args["group"]) if root else -1,
                keep=True,
            )
        except (IOError, OSError) as exc:
            raise _Failed("%s: cannot write: %s" % (dest, to_native(exc)), result) from None

    if os.path.lexists(dest):
        changed = _fix_attributes(module, dest, file_args, changed, result)
    if keep is not None and keep != src:
        kept, _problem = _read(keep, "last valid pod file")
        if kept != pod_source:
            changed = True
            if not module.check_mode:
                try:
                    write_atomic(
                        keep,
                        pod_source,
                        mode=0o600,
                        owner=user_id(file_args["owner"]) if os.geteuid() == 0 else -1,
                        group=group_id(file_args["group"]) if os.geteuid() == 0 else -1,
                    )
                except (IOError, OSError) as exc:
                    raise _Failed("%s: cannot write: %s" % (keep, to_native(exc)), result) from None
        if _keep_env_files(module, keep, tenant_env_snapshot(policy, rendered), file_args):
            changed = True
    result["changed"] = changed
    return result, before, after


def _keep_env_files(module, keep, texts, file_args):
    """The tenant's env files valid with the kept pod file, as the only ``*.env`` files of
    its directory (the hosting's state directory); True when something changed. Files are
    replaced by rename and removed by unlink: a link there is never followed."""
    directory = last_valid_env_dir(keep)
    try:
        stale, changed = kept_env_changes(directory, texts)
    except (IOError, OSError) as exc:
        raise _Failed(
            "%s: cannot keep the env files: %s" % (directory, to_native(exc)), {}
        ) from None
    if module.check_mode:
        return bool(stale or changed)
    for name in stale:
        try:
            os.unlink(os.path.join(directory, name))
        except (IOError, OSError):
            pass
    root = os.geteuid() == 0
    for name, text in changed.items():
        path = os.path.join(directory, name)
        try:
            write_atomic(
                path,
                text.encode("utf-8"),
                mode=0o600,
                owner=user_id(file_args["owner"]) if root else -1,
                group=group_id(file_args["group"]) if root else -1,
            )
        except (IOError, OSError) as exc:
            raise _Failed("%s: cannot write: %s" % (path, to_native(exc)), {}) from None
    return bool(stale or changed)


def _fix_attributes(module, dest, file_args, changed, result):
    """Owner, group and an octal mode of ``dest`` set through a descriptor opened without
    following a link: ``dest`` lies in the hosting user's state directory, where a link
    swapped in after the write must not make root chown or chmod another file. A symbolic
    mode or SELinux context goes through Ansible's own (path-based) code instead."""
    mode = file_args.get("mode")
    octal = octal_mode(mode) if mode is not None else None
    selinux = any(file_args.get(key) for key in ("seuser", "serole", "setype", "selevel"))
    if (mode is not None and octal is None) or selinux:
        file_args["path"] = dest
        return module.set_fs_attributes_if_different(file_args, changed)
    uid, gid = user_id(file_args.get("owner")), group_id(file_args.get("group"))
    try:
        with open_nofollow(dest) as fd:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Failed("%s: not a regular file" % dest, result)
            if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
                changed = True
                if not module.check_mode:
                    os.fchown(fd, uid, gid)
            if octal is not None and stat.S_IMODE(st.st_mode) != octal:
                changed = True
                if not module.check_mode:
                    os.fchmod(fd, octal)
    except (IOError, OSError) as exc:
        raise _Failed("%s: %s" % (dest, to_native(exc.strerror or exc)), result) from None
    return changed


def _render_many(module):
    diff_before, diff_after = [], []

    def render(item):
        file_args = module.load_file_common_arguments(
            dict(module.params, owner=item["owner"], group=item["group"], mode=item["mode"]),
            path=item["dest"],
        )
        keep = item.get("last_valid")
        try:
            result, before, after = _render(
                module,
                item["src"],
                item["policy"],
                item["dest"],
                file_args,
                module.params["strict"],
                keep=keep,
            )
        except _Failed as exc:
            # The tenant's file does not validate: the last valid one, checked again with
            # the current policy and file system, is what the pod runs (as at its start).
            if keep is None or not os.path.lexists(keep):
                exc.result["last_valid"] = False
                raise
            try:
                result, before, after = _render(
                    module,
                    keep,
                    item["policy"],
                    item["dest"],
                    file_args,
                    module.params["strict"],
                    env_dir=last_valid_env_dir(keep),
                )
            except _Failed as older:
                raise _Failed(
                    "%s\nThe last valid version of the pod file (%s) no longer validates"
                    " either:\n%s" % (exc.msg, keep, older.msg),
                    dict(
                        older.result,
                        errors=exc.result["errors"] + older.result["errors"],
                        last_valid=True,
                    ),
                ) from None
            result = dict(result, fallback=True, invalid_msg=exc.msg, invalid=exc.result["errors"])
        if result["changed"]:
            diff_before.append("# %s\n%s" % (item["dest"], before or ""))
            diff_after.append("# %s\n%s" % (item["dest"], after))
        return _without_rendered(result)

    def failure(item, exc):
        if isinstance(exc, _Failed):
            return dict(_without_rendered(exc.result), msg=exc.msg)
        if isinstance(exc, (IOError, OSError)):
            msg = "%s: %s" % (item["dest"], to_native(exc))
        else:
            # Not an error the engine reports (a bug): still this hosting's failure alone,
            # named by the tenant's file, never the whole host's.
            msg = "%s: cannot be checked (%s: %s); the pod keeps what it runs" % (
                item["src"],
                type(exc).__name__,
                to_native(exc),
            )
        return dict(changed=False, dest=item["dest"], errors=[msg], msg=msg)

    try:
        # A pod that fails is reported in pods; the module itself does not fail for it.
        # Every exception of one item is that item's: one tenant's file never stops the
        # rendering of the others (issue 31).
        batch = run_batch(module.params["renders"], render, Exception, "renders", failure)
    except BatchError as exc:
        module.fail_json(msg=str(exc))
    output = dict(changed=batch.changed, pods=batch.results)
    if module._diff:
        output["diff"] = dict(before="".join(diff_before), after="".join(diff_after))
    module.exit_json(**output)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),
            policy=dict(type="dict"),
            policy_file=dict(type="path"),
            dest=dict(type="path"),
            strict=dict(type="bool", default=False),
            renders=dict(
                type="list",
                elements="dict",
                options=dict(
                    name=dict(type="str", required=True),
                    src=dict(type="path", required=True),
                    policy=dict(type="dict", required=True),
                    dest=dict(type="path", required=True),
                    last_valid=dict(type="path"),
                    owner=dict(type="str"),
                    group=dict(type="str"),
                    mode=dict(type="raw"),
                ),
            ),
        ),
        mutually_exclusive=[
            ("policy", "policy_file"),
            ("renders", "src"),
            ("renders", "dest"),
            ("renders", "policy"),
            ("renders", "policy_file"),
        ],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if module.params["renders"] is not None:
        _render_many(module)
    missing = [key for key in ("src", "dest") if module.params[key] is None]
    if missing:
        module.fail_json(msg="missing required arguments: %s" % ", ".join(missing))
    if module.params["policy"] is None and module.params["policy_file"] is None:
        module.fail_json(msg="one of the following is required: policy, policy_file")
    src = module.params["src"]
    dest = module.params["dest"]

    if module.params["policy_file"] is not None:
        policy_source, problem = _read(module.params["policy_file"], "system policy")
        if problem:
            module.fail_json(
                msg=problem, errors=[problem], changed=False, dest=dest, warnings_list=[]
            )
    else:
        policy_source = module.params["policy"]
    file_args = module.load_file_common_arguments(module.params, path=dest)
    try:
        result, before, after = _render(
            module, src, policy_source, dest, file_args, module.params["strict"]
        )
    except _Failed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    for warning in result["warnings_list"]:
        module.warn(warning)
    if module._diff:
        result["diff"] = dict(
            before=before or "",
            after=after,
            before_header="%s (before)" % dest,
            after_header="%s (after)" % dest,
        )
    module.exit_json(**result)


def _without_rendered(result):
    return dict((key, value) for key, value in result.items() if key != "rendered")


if __name__ == "__main__":
    main()
