# SPDX-License-Identifier: GPL-3.0-or-later
"""Configuration: everything tunable lives here (what a lab host has: recipe.py).

Settings from the environment (LAB_CACHE_DIR, LAB_STATE_DIR, ...) are read once, at import.
The other modules read them as ``config.NAME`` when they run, so a test can point them at a
temporary directory; fixed constants are imported by name.
"""

import hashlib
import os
import re

CACHE_DIR = os.environ.get("LAB_CACHE_DIR", "/var/cache/webhosting-pods-lab")
STATE_DIR = os.environ.get("LAB_STATE_DIR", "/var/lib/webhosting-pods-lab")
MIRROR = os.environ.get("LAB_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
BOOT_TIMEOUT = float(os.environ.get("LAB_BOOT_TIMEOUT", "60"))
STOP_TIMEOUT = float(os.environ.get("LAB_STOP_TIMEOUT", "90"))

RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = "bookworm"

# Packages this machine needs to run the lab (labctl deps).
MACHINE_PACKAGES = [
    "debootstrap",
    "systemd-container",
    "pebble",
    "docker-registry",
    "busybox-static",
    "socat",
    "curl",
    "openssl",
    "apache2-utils",
    "iproute2",
    "wrk",
    "python3-yaml",
    # ssh-keygen: the lab tenants' SFTP keys (services.py)
    "openssh-client",
    # apt-ftparchive: indexes the lab's offline apt repository (repo.py)
    "apt-utils",
]


LAB_DOMAIN = "example.test"
LAB_NAMES = ["demo.example.test", "registry.example.test", "pebble.example.test"]
REGISTRY_HOST = "registry.example.test"
REGISTRY_PORT = 5000
REGISTRY_USER = "labuser"
PEBBLE_PORT = 14000
PEBBLE_MGMT_PORT = 15000
DNS_MGMT_PORT = 8055
IMAGE_REPO = "lab/httpd"
IMAGE_TAGS = ("1", "2")
IMAGE_UID = 1000
IMAGE_PORT = 8080

MARKER_ENV = "WEBHOSTING_PODS_LAB_HOSTDIR"
BUILD_MARKER_ENV = "WEBHOSTING_PODS_LAB_BUILD"
NSPAWN_RUN = "/run/systemd/nspawn"
NSPAWN_RUN_SOURCE = "webhosting-pods-lab"


def cgroup_parent(state_dir):
    """The cgroup directory of the lab hosts of state_dir, under each hierarchy."""
    parent = "webhosting-pods-lab"
    if state_dir != "/var/lib/webhosting-pods-lab":  # a second lab (tests): its own cgroup tree
        parent += "-" + hashlib.sha256(state_dir.encode()).hexdigest()[:8]
    return parent


CGROUP_PARENT = cgroup_parent(STATE_DIR)
CGROUP_HIERARCHIES = ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified")
INNER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TRUST_DIR = "/usr/local/share/ca-certificates"
ROOTFS_MARKER = ".webhosting-pods-lab.json"
# \A and \Z: `$` would also match before a final newline ("demo\n")
NAME_RE = re.compile(r"\A[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")

VERBOSE = bool(os.environ.get("LAB_VERBOSE"))
