# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab root file system recipe and its hash (the key of the rootfs cache)."""

import hashlib
import json

# The lab root file system recipe: the ONE place that says what a lab host has.
# The lab host has no network, so everything the roles install must be here.
# Changing anything in RECIPE changes its hash and `build` rebuilds the cache.
RECIPE = {
    # bump when the build steps (rootfs.py) change in a way the lists do not show
    "version": 1,
    # debootstrap --include (podman cannot go here: debootstrap does not resolve
    # its virtual dependencies)
    "include": [
        "systemd",
        "systemd-sysv",
        "dbus",
        "python3",
        "ca-certificates",
        "libpam-systemd",
        "netbase",
    ],
    # chroot apt-get install, every release
    "packages": [
        # rootless podman
        "podman",
        "netavark",
        "aardvark-dns",
        "uidmap",
        "slirp4netns",
        "runc",
        "iptables",
        "fuse-overlayfs",
        "dbus-user-session",
        # ingress and TLS
        "nginx",
        "openssl",
        "certbot",
        "python3-cryptography",
        # Ansible on the host (apt/package_facts, become to hosting users, ACLs)
        "python3-yaml",
        "python3-apt",
        "sudo",
        "acl",
        # chrooted SFTP for the tenants (the host role); its client for the tests
        "openssh-server",
        "openssh-client",
        # tools the tests and the roles use
        "socat",
        "curl",
        "busybox-static",
        "logrotate",
        "iproute2",
        "procps",
    ],
    # extra packages per release
    "release_packages": {
        "bookworm": [],
        "trixie": ["passt", "crun"],
    },
    # units that cannot work offline or in a container
    "mask": [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
    ],
}


def recipe_for(release):
    return {
        "version": RECIPE["version"],
        "release": release,
        "include": sorted(RECIPE["include"]),
        "packages": sorted(RECIPE["packages"] + RECIPE["release_packages"][release]),
        "mask": sorted(RECIPE["mask"]),
    }


def recipe_hash(release):
    blob = json.dumps(recipe_for(release), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()
