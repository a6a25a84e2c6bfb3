#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: paths
short_description: Converge many directories, files and symlinks at once, following no symlink
version_added: 0.1.0
description:
  - Brings a list of paths to their state in order - directories, files with given content,
    symlinks or absent - with numeric owner, group and mode. One call replaces a loop of
    M(ansible.builtin.file) and M(ansible.builtin.copy) tasks, which matters when a pod host
    has many hostings.
  - Made for trees a tenant can partly write to while the module runs as root. The last
    component of every path is opened with C(O_NOFOLLOW) and changed through that descriptor;
    a symlink where a directory or file is expected makes the module fail; parent components
    inside directories not owned by root must not be symlinks; files are replaced by rename.
  - The diff lists type, owner, group, mode and a SHA-1 of file contents, never the contents,
    so files holding secrets can be managed.
options:
  paths:
    description:
      - The paths, converged in the order given (list parents before children).
      - Required unless O(groups) is given.
    type: list
    elements: dict
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description:
          - What the path must be.
          - Defaults to V(file) when O(paths[].content) is given, else V(directory).
          - V(moved) renames a file a new release calls otherwise (a tenant's file) to
            O(paths[].dest), only when nothing has that name yet; a symlink is moved as
            itself, never followed, and a file that appeared under the new name meanwhile
            is never replaced.
        type: str
        choices: [directory, file, link, absent, moved]
      dest:
        description: For V(moved), the new name, in the same directory.
        type: path
      owner:
        description: Numeric uid (names are not resolved, so check mode works before a user exists).
        type: int
      group:
        description: Numeric gid.
        type: int
      mode:
        description: Octal mode as a string, for example V("0750") or V("2770").
        type: str
      content:
        description: Content of a file.
        type: str
      template:
        description:
          - A template of the role (its C(templates) directory) rendered on the controller
            into O(paths[].content) by the module's action, with the task's variables, the
            O(vars) (of the group) and O(paths[].vars) layered over them.
          - The module itself refuses an entry that still has it.
        type: str
      vars:
        description: Variables for O(paths[].template), over the task's and the group's.
        type: dict
      src:
        description: Target of a link.
        type: str
      create_only:
        description: For a file, create it when absent and never touch it afterwards.
        type: bool
        default: false
      keep_content:
        description:
          - For a file others write to (a log), create it with O(paths[].content) when
            absent; afterwards converge only its owner, group and mode, never its content.
            A file with more than one name (a hard link) is refused.
        type: bool
        default: false
      validate:
        description:
          - For a file, a command (a list of arguments, no shell) that must succeed on the
            new content before it replaces the file; C(%s) in an argument stands for the
            path of a temporary file holding the new content, beside the file.
          - Run only when the content changes, and not in check mode. When it fails, the
            file is left as it was and the path (its group, with O(groups)) fails with the
            command's output.
        type: list
        elements: str
  vars:
    description: Variables for every O(paths[].template) of O(paths).
    type: dict
  prune:
    description:
      - Remove regular files and symlinks matching O(prune[].pattern) in O(prune[].dir)
        that O(paths) does not list.
    type: list
    elements: dict
    default: []
    suboptions:
      dir:
        description: Directory to look in (not recursive).
        type: path
        required: true
      pattern:
        description: Shell pattern of the file names, for example C(*.env).
        type: str
        required: true
      owner:
        description:
          - Remove only entries owned by this numeric uid (for example V(0) in a directory
            where a tenant keeps files of their own beside root's).
        type: int
  probe:
    description: Paths whose existence is returned in RV(exists) (read after the changes).
    type: list
    elements: path
    default: []
  groups:
    description:
      - Many independent sets of O(paths), O(prune) and O(probe) in one call, for
        example one per hosting of a pod host. A group that fails (a planted symlink, a
        write error) is reported in RV(groups) under its name and the other groups are
        still converged; the module fails only when every group failed.
      - Mutually exclusive with O(paths), O(prune) and O(probe).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the group in RV(groups).
        type: str
        required: true
      vars:
        description: Variables for every O(paths[].template) of the group.
        type: dict
      paths:
        description: As O(paths).
        type: list
        elements: dict
        default: []
      prune:
        description: As O(prune).
        type: list
        elements: dict
        default: []
      probe:
        description: As O(probe).
        type: list
        elements: path
        default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
author:
  - webhosting.pods developers
"""

EXAMPLES = r"""
- name: Lay out a hosting
  webhosting.pods.paths:
    paths:
      - {path: /srv/hostings/shop, owner: 0, group: 10001, mode: "0750"}
      - {path: /srv/hostings/shop/www, owner: 10001, group: 10001, mode: "2750"}
      - path: /srv/hostings/shop/private/container-config/shop-web.env
        content: "GREETING=hello\n"
        owner: 0
        group: 10001
        mode: "0640"
    prune:
      - {dir: /srv/hostings/shop/private/container-config, pattern: "*.env"}
    probe:
      - /var/lib/systemd/linger/shop
"""

RETURN = r"""
groups:
  description:
    - Per group of O(groups), its RV(actions), RV(exists) and V(changed); a failed group
      has V(failed=true) and C(msg) instead.
  returned: when O(groups) is given
  type: dict
  sample:
    shop: {"changed": true, "actions": {"/srv/hostings/shop/www": "created"}, "exists": {}}
actions:
  description: What was done (or would be done in check mode) per changed path.
  returned: success
  type: dict
  sample: {"/srv/hostings/shop/www": "created"}
exists:
  description: Whether each O(probe) path exists.
  returned: success
  type: dict
  sample: {"/var/lib/systemd/linger/shop": true}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.webhosting.pods.plugins.module_utils.batch import (
    BatchError,
    run_batch,
    summary,
)
from ansible_collections.webhosting.pods.plugins.module_utils.paths import (
    PathsError,
    converge,
    diff_text,
)

_PATH_OPTIONS = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["directory", "file", "link", "absent", "moved"]},
    "dest": {"type": "path"},
    "owner": {"type": "int"},
    "group": {"type": "int"},
    "mode": {"type": "str"},
    "content": {"type": "str"},
    "src": {"type": "str"},
    "create_only": {"type": "bool", "default": False},
    "keep_content": {"type": "bool", "default": False},
    "validate": {"type": "list", "elements": "str"},
    # rendered into content by the action (plugins/action/paths.py)
    "template": {"type": "str"},
    "vars": {"type": "dict"},
}
_PRUNE_OPTIONS = {
    "dir": {"type": "path", "required": True},
    "pattern": {"type": "str", "required": True},
    "owner": {"type": "int"},
}


def _entries(paths):
    for entry in paths:
        if entry.get("template") is not None:
            raise PathsError(
                f"{entry['path']}: template {entry['template']} was not rendered"
                " (the module runs through its action, webhosting.pods.paths)"
            )
    return [{k: v for k, v in e.items() if v is not None and k != "vars"} for e in paths]


def _one(module, paths, prune, probe):
    """converge() of one set; its result as returned by the module, diff included."""
    result = converge(_entries(paths), prune, probe, module.check_mode)
    output = {
        "changed": result["changed"],
        "actions": result["actions"],
        "exists": result["exists"],
    }
    return output, result


def _set_options(paths_default):
    """The options of one set of paths: the module's own, or one of its groups."""
    paths = {"type": "list", "elements": "dict", "options": _PATH_OPTIONS}
    if paths_default is not None:
        paths["default"] = paths_default
    return {
        "paths": paths,
        "prune": {"type": "list", "elements": "dict", "default": [], "options": _PRUNE_OPTIONS},
        "probe": {"type": "list", "elements": "path", "default": []},
        "vars": {"type": "dict"},
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            _set_options(paths_default=None),
            groups={
                "type": "list",
                "elements": "dict",
                "options": dict(
                    _set_options(paths_default=[]), name={"type": "str", "required": True}
                ),
            },
        ),
        required_one_of=[("paths", "groups")],
        mutually_exclusive=[("paths", "groups")],
        supports_check_mode=True,
    )
    p = module.params
    if p["groups"] is None:
        try:
            output, result = _one(module, p["paths"], p["prune"], p["probe"])
        except PathsError as exc:
            module.fail_json(msg=str(exc))
        if module._diff:
            before, after = diff_text(result)
            output["diff"] = {"before": before, "after": after}
        module.exit_json(**output)

    if p["prune"] or p["probe"]:
        module.fail_json(msg="prune and probe go inside each of groups, not beside it")
    diff_before, diff_after = [], []

    def converge_group(group):
        output, result = _one(module, group["paths"], group["prune"], group["probe"])
        before, after = diff_text(result)
        diff_before.append(before)
        diff_after.append(after)
        return output

    try:
        batch = run_batch(p["groups"], converge_group, PathsError, "groups")
    except BatchError as exc:
        module.fail_json(msg=str(exc))
    output = {"changed": batch.changed, "groups": batch.results}
    if module._diff:
        output["diff"] = {"before": "".join(diff_before), "after": "".join(diff_after)}
    if batch.all_failed:
        module.fail_json(msg=summary("every group failed: ", batch.failures), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
