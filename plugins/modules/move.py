#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: move
short_description: Pack a hosting on its old pod host, unpack it on the new one, prove both the same
version_added: 0.3.0
description:
  - The file steps of C(playbooks/move.yml). V(pack) writes a gzip tar of the hosting's
    paths (numeric owners, ACLs, extended attributes, holes) and the manifest of the
    hosting root. V(unpack) extracts such an archive where nothing of the hosting exists
    yet, moves the owners of files owned by subordinate ids to the new host's range, and
    computes the manifest again.
  - The manifest lists every entry below the hosting root (type, mode, owner and group
    relative to the hosting, size, SHA-256 of the content or the link target); equal
    digests on both hosts prove that the tenant's files arrived unchanged.
  - No link is followed, on either host.
options:
  step:
    description: What to do.
    type: str
    required: true
    choices: [pack, unpack]
  root:
    description: The hosting root (its manifest).
    type: path
    required: true
  uid:
    description: The hosting user's uid.
    type: int
    required: true
  gid:
    description: The hosting group's gid.
    type: int
    required: true
  count:
    description: Number of subordinate ids of the hosting.
    type: int
    default: 65536
  subuid_start:
    description: First subordinate uid of the hosting on this host.
    type: int
    required: true
  subgid_start:
    description: First subordinate gid of the hosting on this host.
    type: int
    required: true
  archive:
    description: The archive file (written by V(pack), read by V(unpack)).
    type: path
    required: true
  sources:
    description: V(pack) - the absolute paths to archive (missing ones are left out).
    type: list
    elements: path
    default: []
  renewal_conf:
    description:
      - V(pack) - certbot's renewal configuration of the hosting's lineage; the account
        directory it names (below O(letsencrypt_dir)) is archived too, so that the new
        host renews the certificate with the same account.
    type: path
  letsencrypt_dir:
    description: V(pack) - certbot's configuration directory.
    type: path
    default: /etc/letsencrypt
  must_not_exist:
    description: V(unpack) - paths of the hosting that must not exist yet on this host.
    type: list
    elements: path
    default: []
  old_subuid_start:
    description: V(unpack) - the first subordinate uid of the hosting on the old host.
    type: int
  old_subgid_start:
    description: V(unpack) - the first subordinate gid of the hosting on the old host.
    type: int
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: none
author:
  - webhosting.pods developers
"""

EXAMPLES = r"""
- name: Pack shop on the old host
  webhosting.pods.move:
    step: pack
    root: /srv/hostings/shop
    uid: 10001
    gid: 10001
    subuid_start: 1000065536
    subgid_start: 1000065536
    archive: /var/backups/webhosting-pods/shop-move.tar.gz
    sources: [/srv/hostings/shop, /var/lib/webhosting-pods/state/shop]
"""

RETURN = r"""
digest:
  description: SHA-256 of the manifest of the hosting root.
  returned: always
  type: str
entries:
  description: Entries of the manifest.
  returned: always
  type: int
bytes:
  description: Bytes of the regular files below the hosting root.
  returned: always
  type: int
archived:
  description: V(pack) - the paths in the archive.
  returned: when O(step=pack)
  type: list
  elements: str
archive_bytes:
  description: Size of the archive file.
  returned: always
  type: int
shifted:
  description: V(unpack) - entries whose owner moved to the new host's subordinate ids.
  returned: when O(step=unpack)
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.webhosting.pods.plugins.module_utils.move import (
    MoveError,
    certbot_account,
    digest,
    manifest,
    pack,
    shift_owners,
    unpack,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "step": {"type": "str", "required": True, "choices": ["pack", "unpack"]},
            "root": {"type": "path", "required": True},
            "uid": {"type": "int", "required": True},
            "gid": {"type": "int", "required": True},
            "count": {"type": "int", "default": 65536},
            "subuid_start": {"type": "int", "required": True},
            "subgid_start": {"type": "int", "required": True},
            "archive": {"type": "path", "required": True},
            "sources": {"type": "list", "elements": "path", "default": []},
            "renewal_conf": {"type": "path"},
            "letsencrypt_dir": {"type": "path", "default": "/etc/letsencrypt"},
            "must_not_exist": {"type": "list", "elements": "path", "default": []},
            "old_subuid_start": {"type": "int"},
            "old_subgid_start": {"type": "int"},
        },
        required_if=[("step", "unpack", ("old_subuid_start", "old_subgid_start"))],
        supports_check_mode=False,
    )
    p = module.params
    result = {}
    try:
        if p["step"] == "pack":
            entries, size = manifest(
                p["root"], p["uid"], p["gid"], p["subuid_start"], p["subgid_start"], p["count"]
            )
            sources = list(p["sources"])
            account = p["renewal_conf"] and certbot_account(p["letsencrypt_dir"], p["renewal_conf"])
            if account:
                sources.append(account)
            result["archived"] = pack(p["archive"], sources)
        else:
            unpack(p["archive"], p["must_not_exist"])
            result["shifted"] = shift_owners(
                p["root"],
                (p["old_subuid_start"], p["subuid_start"]),
                (p["old_subgid_start"], p["subgid_start"]),
                p["count"],
            )
            entries, size = manifest(
                p["root"], p["uid"], p["gid"], p["subuid_start"], p["subgid_start"], p["count"]
            )
    except (MoveError, OSError) as exc:
        module.fail_json(msg=f"{p['step']}: {exc}")
    module.exit_json(
        changed=True,
        digest=digest(entries),
        entries=len(entries),
        bytes=size,
        archive_bytes=os.path.getsize(p["archive"]),
        **result,
    )


if __name__ == "__main__":
    main()
