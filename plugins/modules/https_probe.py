#!/usr/bin/python
# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: https_probe
short_description: Ask this host's nginx for a hosting's page over HTTPS, whatever DNS says
version_added: 0.3.0
description:
  - Connects to O(address) (this host's nginx), sends O(server_name) as TLS SNI and HTTP
    C(Host), and returns the status, the DNS names of the certificate nginx served and a
    digest of the body. C(curl --resolve) does the same; this needs nothing on the host
    but Python (curl is not a pod host package).
  - Used by C(playbooks/move.yml) to check that the new host serves a moved hosting
    before the old one lets it go, while the domain still points to the old host.
  - The certificate is read, not verified (the point is which one nginx serves; the
    chain is the CA's business, and DNS does not point here yet).
options:
  server_name:
    description: The domain (SNI and Host).
    type: str
    required: true
  address:
    description: Where nginx listens.
    type: str
    default: 127.0.0.1
  port:
    description: The HTTPS port.
    type: int
    default: 443
  path:
    description: The URL path.
    type: str
    default: /
  timeout:
    description: Seconds for the connection and the answer.
    type: int
    default: 30
  unix_socket:
    description:
      - Ask over plain HTTP through this unix socket instead (a hosting's forwarder socket,
        C(/run/webhosting-pods/<name>/<port>)), with O(server_name) as C(Host); no TLS, no
        certificate (RV(dns_names) is empty). O(address) and O(port) are not used.
      - Used by the hosting role to wait, after it restarted a running pod, until the pod
        answers before it goes on to the next hosting.
    type: path
    version_added: 0.4.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - python3-cryptography (the certificate's names).
author:
  - webhosting.pods developers
"""

EXAMPLES = r"""
- name: Ask the new host for shop's page
  webhosting.pods.https_probe:
    server_name: shop.example
  register: __probe
  until: __probe.status == 200
  retries: 30
  delay: 1
"""

RETURN = r"""
status:
  description: The HTTP status (0 when no answer came).
  returned: always
  type: int
dns_names:
  description: The DNS names of the certificate nginx served.
  returned: always
  type: list
  elements: str
body_sha256:
  description: SHA-256 of the body.
  returned: always
  type: str
error:
  description: Why there was no answer.
  returned: when RV(status) is 0
  type: str
"""

import hashlib
import http.client
import socket
import ssl

from ansible.module_utils.basic import AnsibleModule


def probe(server_name, address, port, path, timeout):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            conn = http.client.HTTPConnection(server_name, port, timeout=timeout)
            conn.sock = tls
            conn.request("GET", path, headers={"Host": server_name, "Connection": "close"})
            response = conn.getresponse()
            body = response.read()
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = sorted(names.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = []
    return response.status, dns, hashlib.sha256(body).hexdigest()


def probe_unix(server_name, path_on_socket, path, timeout):
    """(status, body digest) of a plain HTTP GET through a unix socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(timeout)
        raw.connect(path_on_socket)
        conn = http.client.HTTPConnection(server_name, timeout=timeout)
        conn.sock = raw
        conn.request("GET", path, headers={"Host": server_name, "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
    return response.status, hashlib.sha256(body).hexdigest()


def main():
    module = AnsibleModule(
        argument_spec={
            "server_name": {"type": "str", "required": True},
            "address": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 443},
            "path": {"type": "str", "default": "/"},
            "timeout": {"type": "int", "default": 30},
            "unix_socket": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["unix_socket"]:
        try:
            status, body = probe_unix(p["server_name"], p["unix_socket"], p["path"], p["timeout"])
        except (OSError, http.client.HTTPException) as exc:
            module.exit_json(changed=False, status=0, dns_names=[], body_sha256="", error=str(exc))
        module.exit_json(changed=False, status=status, dns_names=[], body_sha256=body)
    try:
        status, dns, body = probe(
            p["server_name"], p["address"], p["port"], p["path"], p["timeout"]
        )
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        module.exit_json(changed=False, status=0, dns_names=[], body_sha256="", error=str(exc))
    except ImportError:
        module.fail_json(msg="https_probe needs python3-cryptography")
    module.exit_json(changed=False, status=status, dns_names=dns, body_sha256=body)


if __name__ == "__main__":
    main()
