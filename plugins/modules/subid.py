#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: subid
short_description: Allocate a user's subordinate uid and gid range
version_added: 0.1.0
description:
  - Ensures that a user owns one range of subordinate user ids in C(/etc/subuid) and one of
    subordinate group ids in C(/etc/subgid), as rootless podman needs.
  - A range the user already owns is kept unchanged (stable across runs), provided it is a
    single range of at least O(count) ids that overlaps no other owner's range; otherwise
    the module fails and names the offending line, because moving a range would orphan
    the user's container storage.
  - A new range goes to the deterministic slot O(base) + (O(uid) - O(uid_min)) * O(count)
    when that slot is free in the file, else to the lowest free slot at or above O(base).
    Both files are read in full, so a new range never overlaps anybody's.
  - Files are replaced atomically (temporary file in the same directory, then rename).
options:
  name:
    description:
      - The user name (the owner field written to the files).
      - Required unless O(users) is given.
    type: str
  uid:
    description:
      - The user's numeric uid; entries keyed by this uid also count as the user's.
      - Required unless O(users) is given.
    type: int
  users:
    description:
      - Many users at once (one read and one write of each file for a whole pod host),
        each as O(name) and O(uid). Mutually exclusive with O(name).
      - A user whose range cannot be kept or allocated is reported in RV(failed_users)
        and left out; the others are still allocated. The module fails only when every
        user failed.
    type: list
    elements: dict
    suboptions:
      name:
        description: As O(name).
        type: str
        required: true
      uid:
        description: As O(uid).
        type: int
        required: true
  count:
    description: Number of subordinate ids the user needs.
    type: int
    default: 65536
  base:
    description: Lowest id this module allocates from.
    type: int
    default: 1000000000
  uid_min:
    description: The uid that maps to the slot at O(base); later uids follow in steps of O(count).
    type: int
    default: 10000
  max_id:
    description: Highest id that may be allocated.
    type: int
    default: 4294967294
  state:
    description:
      - V(present) ensures the ranges; V(absent) removes every line of the user from both files.
    type: str
    choices: [present, absent]
    default: present
  subuid_path:
    description: Path of the subordinate uid file.
    type: path
    default: /etc/subuid
  subgid_path:
    description: Path of the subordinate gid file.
    type: path
    default: /etc/subgid
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
- name: Give the hosting user shop its subordinate ids
  webhosting.pods.subid:
    name: shop
    uid: 10001

- name: Give every hosting user its subordinate ids in one call
  webhosting.pods.subid:
    users:
      - {name: shop, uid: 10001}
      - {name: blog, uid: 10002}

- name: Remove the ranges of a deleted hosting
  webhosting.pods.subid:
    name: oldshop
    uid: 10007
    state: absent
"""

RETURN = r"""
users:
  description: Per user of O(users), its RV(subuid) and RV(subgid) ranges.
  returned: when O(users) is given
  type: dict
  sample:
    shop:
      subuid: {"start": 1000065536, "count": 65536}
      subgid: {"start": 1000065536, "count": 65536}
failed_users:
  description: Per user of O(users) that could not be allocated, the reason.
  returned: when O(users) is given
  type: dict
  sample: {"blog": "/etc/subuid: line 3: blog owns 2 ranges"}
subuid:
  description: The user's subordinate uid range (empty for O(state=absent)).
  returned: success
  type: dict
  sample: {"start": 1000065536, "count": 65536}
subgid:
  description: The user's subordinate gid range (empty for O(state=absent)).
  returned: success
  type: dict
  sample: {"start": 1000065536, "count": 65536}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.webhosting.pods.plugins.module_utils.batch import (
    BatchError,
    run_batch,
    summary,
)
from ansible_collections.webhosting.pods.plugins.module_utils.fileio import write_atomic
from ansible_collections.webhosting.pods.plugins.module_utils.subid import (
    SubidError,
    plan,
    render_removed,
)


def _read(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def _write_all(module, updates, result):
    """Write the (path, text) updates, unless in check mode."""
    if module.check_mode:
        return
    for path, text in updates:
        try:
            # owner and mode: those of the file replaced; a new file: 0666 minus the umask
            write_atomic(path, text, keep=True)
        except OSError as exc:
            module.fail_json(msg=f"{path}: cannot write: {to_native(exc)}", **result)


def _files(p):
    return (("subuid", p["subuid_path"]), ("subgid", p["subgid_path"]))


def _diff(path, before, after):
    return {"before": before, "after": after, "before_header": path, "after_header": path}


def _plan(p, text, name, uid, path):
    """plan() with the module's range settings."""
    settings = {key: p[key] for key in ("count", "base", "uid_min", "max_id")}
    return plan(text, name, uid, path=path, **settings)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str"},
            "uid": {"type": "int"},
            "users": {
                "type": "list",
                "elements": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "uid": {"type": "int", "required": True},
                },
            },
            "count": {"type": "int", "default": 65536},
            "base": {"type": "int", "default": 1000000000},
            "uid_min": {"type": "int", "default": 10000},
            "max_id": {"type": "int", "default": 4294967294},
            "state": {
                "type": "str",
                "default": "present",
                "choices": ["present", "absent"],
            },
            "subuid_path": {"type": "path", "default": "/etc/subuid"},
            "subgid_path": {"type": "path", "default": "/etc/subgid"},
        },
        required_one_of=[("name", "users")],
        mutually_exclusive=[("name", "users")],
        required_together=[("name", "uid")],
        supports_check_mode=True,
    )
    p = module.params
    if p["users"] is not None:
        _many(module)
    result = {"changed": False, "subuid": {}, "subgid": {}}
    diffs = []
    updates = []
    try:
        for key, path in _files(p):
            before = _read(path)
            if p["state"] == "present":
                after, allocation = _plan(p, before, p["name"], p["uid"], path)
                result[key] = {"start": allocation.start, "count": allocation.count}
            else:
                after = render_removed(before, p["name"], p["uid"], path=path)
            if after != before:
                updates.append((path, after))
                diffs.append(_diff(path, before, after))
    except SubidError as exc:
        module.fail_json(msg=to_native(exc), **result)

    result["changed"] = bool(updates)
    if module._diff:
        result["diff"] = diffs
    _write_all(module, updates, result)
    module.exit_json(**result)


def _many(module):
    """O(users): every user planned against the files as the users before it left them."""
    p = module.params
    if p["state"] != "present":
        module.fail_json(msg="users is for state=present; remove ranges one user at a time")
    files = _files(p)
    before = {key: _read(path) for key, path in files}
    texts = dict(before)
    failed_in = {}

    def allocate(user):
        # Both ranges or neither: a user failing in the gid file leaves no range behind
        # in the uid file either.
        planned, ranges = {}, {}
        for key, path in files:
            failed_in[user["name"]] = key
            planned[key], allocation = _plan(p, texts[key], user["name"], user["uid"], path)
            ranges[key] = {"start": allocation.start, "count": allocation.count}
        texts.update(planned)
        return ranges

    try:
        batch = run_batch(p["users"], allocate, SubidError, "users")
    except BatchError as exc:
        module.fail_json(msg=str(exc))
    # the users failing in the uid file first, then those failing in the gid file
    order = [key for key, _path in files]
    failed = dict(sorted(batch.failures.items(), key=lambda f: order.index(failed_in[f[0]])))
    changed = [(key, path) for key, path in files if texts[key] != before[key]]
    result = {
        "changed": bool(changed),
        "users": {name: r for name, r in batch.results.items() if name not in failed},
        "failed_users": failed,
    }
    if module._diff:
        result["diff"] = [_diff(path, before[key], texts[key]) for key, path in changed]
    if batch.all_failed:
        module.fail_json(msg=summary("no user could be allocated: ", failed), **result)
    _write_all(module, [(path, texts[key]) for key, path in changed], result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
