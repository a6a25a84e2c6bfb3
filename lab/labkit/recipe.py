# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab root file system recipe and its hash (the key of the rootfs and repository cache)."""

import hashlib
import json

# The lab recipe: the ONE place that says what a lab host has, and what it may install.
# A lab host starts as bare as a fresh Debian generic cloud image: every package a role
# needs is installed by that role, from the lab's offline apt repository (lab hosts have
# no network), so a role that forgets to install something fails the tests.
# Changing anything in RECIPE changes its hash and `build` rebuilds the cache.
RECIPE = {
    # bump when the build steps (rootfs.py) change in a way the lists do not show
    "version": 2,
    # debootstrap --variant=minbase --include: what a Debian generic cloud image has on
    # top of minbase and what the lab needs of it. Nothing a role installs may be here
    # (tests/unit/lab checks it against the roles' package lists).
    "include": [
        # the init system and its bus: the lab host boots systemd as PID 1
        "systemd",
        "systemd-sysv",
        "dbus",
        # logind sessions: linger and user@UID managers (cloud image: yes)
        "libpam-systemd",
        # Ansible's interpreter (cloud image: cloud-init's language)
        "python3",
        # Ansible's apt and package_facts modules (cloud image: unattended-upgrades
        # depends on it)
        "python3-apt",
        # TLS trust (the lab CA, Pebble's root); pulls in openssl, which the ingress
        # role also lists: on a cloud image it is there before any role runs
        "ca-certificates",
        # /etc/services, /etc/protocols
        "netbase",
        # the cloud image's admin tools. The tests use these inside the host: ssh/sftp
        # (openssh-client; the SFTP checks log in as tenants), curl, ip and ss
        # (iproute2), ps (procps). openssh-server is on a cloud image too, but the host
        # role installs it, so it is left out: a role that forgot it would pass here.
        "openssh-client",
        "sudo",
        "curl",
        "iproute2",
        "procps",
    ],
    # Tools only the tests need on a lab host that a cloud image lacks: none today (the
    # tests' socat, getfacl, podman, nginx and certbot come with the roles' packages; the
    # test images are built on this machine from its busybox-static, images.py).
    "test_tools": [],
    # Downloaded (never installed) into the lab's offline apt repository, with their
    # Recommends: every package a role may install. The roles' own lists:
    # roles/host/defaults/main.yml host_packages (+ vars/main.yml per release),
    # roles/ingress/defaults/main.yml ingress_packages; tests/unit/lab checks they are all
    # here. The upgrade scenario's previous release (v0.1.0) installs a subset of these.
    "repo_packages": [
        # host: rootless podman (catatonit: its pause image)
        "podman",
        "catatonit",
        "uidmap",
        "netavark",
        "aardvark-dns",
        "iptables",
        "fuse-overlayfs",
        "dbus-user-session",
        "slirp4netns",
        "runc",
        # crun: host_oci_runtime may pick it on Debian 12 too
        "crun",
        # host: forwarders, Ansible's YAML, ACLs, logs, chrooted SFTP
        "socat",
        "python3-yaml",
        "acl",
        "logrotate",
        "openssh-server",
        # host and ingress: nginx; ingress: ACME and certificates
        "nginx",
        "certbot",
        "python3-cryptography",
        "openssl",
    ],
    # extra repository packages per release
    "release_repo_packages": {
        "bookworm": [],
        # pasta: the second rootless network helper on Debian 13; nftables: its netavark's
        # firewall (host role vars)
        "trixie": ["passt", "nftables"],
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

# Where a lab host sees the offline repository (read-only bind mount) and its apt source.
REPO_MOUNT = "/srv/lab-apt"
REPO_SOURCE = f"deb [trusted=yes] file:{REPO_MOUNT} ./\n"


def recipe_for(release):
    return {
        "version": RECIPE["version"],
        "release": release,
        "include": sorted(RECIPE["include"]),
        "test_tools": sorted(RECIPE["test_tools"]),
        "repo_packages": sorted(
            set(RECIPE["repo_packages"] + RECIPE["release_repo_packages"][release])
        ),
        "mask": sorted(RECIPE["mask"]),
        "repo_source": REPO_SOURCE,
    }


def recipe_hash(release):
    blob = json.dumps(recipe_for(release), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()
