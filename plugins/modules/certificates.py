#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificates
short_description: Self-signed stand-ins and ACME certificates of many hostings in one call
version_added: 0.3.0
description:
- Makes the self-signed certificate (an EC P-256 key and a certificate for the hosting's domains,
  in a root-only directory) of every item of O(selfsigned) that has none for exactly these
  domains, and runs certbot for every item of O(acme).
- certbot locks its configuration directory for the whole run, so up to O(parallel) runs go
  side by side, each in a directory of its own below O(letsencrypt_dir) with a copy of
  certbot's accounts; the lineage it makes there is then moved into O(letsencrypt_dir), its
  renewal settings with the paths there, so that certbot's timer renews it like any other.
  The first certificate of each CA (O(acme[].server)), and any hosting that has something
  of a lineage already, run in O(letsencrypt_dir) itself, one after another.
- The ingress role uses it for the new hostings of a run; for one hosting it uses community.crypto's
  modules, four calls per certificate.
- An item that fails is reported under its name; the others go on.
options:
  selfsigned:
    description: Self-signed certificates to make.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The hosting.
        type: str
        required: true
      dir:
        description: Root-only directory of the key and certificate.
        type: path
        required: true
      key:
        description: The private key file.
        type: path
        required: true
      cert:
        description: The certificate file.
        type: path
        required: true
      domains:
        description: Names of the certificate (the first is its CN).
        type: list
        elements: str
        required: true
      days:
        description: Days the certificate is valid.
        type: int
        default: 3650
  acme:
    description: certbot runs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The hosting.
        type: str
        required: true
      argv:
        description: certbot's command line.
        type: list
        elements: str
        required: true
      eab_conf:
        description: Root-only file for the external account binding.
        type: path
        default: ''
      eab_kid:
        description: The EAB key id (empty for none).
        type: str
        default: ''
        no_log: true
      eab_hmac_key:
        description: The EAB HMAC key.
        type: str
        default: ''
        no_log: true
      server:
        description: The ACME directory URL the run asks (the runs of one CA share its account).
        type: str
        default: ''
      webroot:
        description: >-
          The webroot of the HTTP-01 challenge; its C(.well-known/acme-challenge) directory is
          made before runs go side by side.
        type: path
        default: ''
  letsencrypt_dir:
    description: certbot's configuration directory (the lineages and accounts).
    type: path
    default: /etc/letsencrypt
  parallel:
    description: How many certbot runs at most go side by side (1 for one after another).
    type: int
    default: 4
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: a certbot run always asks the CA for a certificate; the role passes only hostings
      without one.
requirements:
- python3-cryptography and certbot on the managed host.
author:
- webhosting.pods developers
"""

EXAMPLES = r"""
- name: Certificates of a new hosting
  webhosting.pods.certificates:
    selfsigned:
      - name: shop
        dir: /etc/webhosting-pods/ingress/certs/shop
        key: /etc/webhosting-pods/ingress/certs/shop/selfsigned.key
        cert: /etc/webhosting-pods/ingress/certs/shop/selfsigned.crt
        domains: [shop.example]
    acme:
      - name: shop
        argv: [/usr/bin/certbot, certonly, --non-interactive, --webroot, --webroot-path,
               /var/lib/webhosting-pods/acme, --cert-name, shop, -d=shop.example]
"""

RETURN = r"""
made:
  description: The hostings whose self-signed certificate was made.
  returned: always
  type: list
  elements: str
issued:
  description: The hostings whose certbot run succeeded.
  returned: always
  type: list
  elements: str
failures:
  description: Per hosting that failed, the step and its message.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.webhosting.pods.plugins.module_utils.certificates import (
    CertificateError,
    issue_all,
    selfsigned,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "selfsigned": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "dir": {"type": "path", "required": True},
                    "key": {"type": "path", "required": True},
                    "cert": {"type": "path", "required": True},
                    "domains": {"type": "list", "elements": "str", "required": True},
                    "days": {"type": "int", "default": 3650},
                },
            },
            "acme": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "argv": {"type": "list", "elements": "str", "required": True},
                    "eab_conf": {"type": "path", "default": ""},
                    "eab_kid": {"type": "str", "default": "", "no_log": True},
                    "eab_hmac_key": {"type": "str", "default": "", "no_log": True},
                    "server": {"type": "str", "default": ""},
                    "webroot": {"type": "path", "default": ""},
                },
            },
            "letsencrypt_dir": {"type": "path", "default": "/etc/letsencrypt"},
            "parallel": {"type": "int", "default": 4},
        },
        supports_check_mode=False,
    )
    made, failures = [], {}
    for item in module.params["selfsigned"]:
        try:
            if not item["domains"]:
                raise CertificateError("no domains")
            if selfsigned(item):
                made.append(item["name"])
        except ImportError:
            module.fail_json(msg="self-signed certificates need python3-cryptography")
        except (CertificateError, OSError, ValueError) as exc:
            failures[item["name"]] = f"self-signed certificate: {exc}"
    if module.params["parallel"] < 1:
        module.fail_json(
            msg=f"parallel: {module.params['parallel']} is not a number of runs (1 or more)"
        )
    issued, acme_failures = issue_all(
        [i for i in module.params["acme"] if i["name"] not in failures],
        module.params["letsencrypt_dir"],
        module.params["parallel"],
    )
    failures.update(acme_failures)
    module.exit_json(changed=bool(made or issued), made=made, issued=issued, failures=failures)


if __name__ == "__main__":
    main()
