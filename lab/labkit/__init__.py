# SPDX-License-Identifier: GPL-3.0-or-later
"""labkit: the code of lab/labctl (the entry point) and lab/bin/nsenter (a link to it).

Modules, each a concern, in dependency order:

- config: settings (LAB_* environment variables) and the lab's fixed names and ports
- recipe: RECIPE, what a lab host has, and its hash (the key of the rootfs cache)
- util: messages, running commands, files, locks; LabError
- procs, mounts: /proc records and markers, stopping processes; unmounting, removing trees
- repo: the offline apt repository of the packages the roles install (built with the rootfs)
- rootfs: building and caching the root file systems and their repositories
- ca: the lab CA and the certificates it signs
- hosts: host state, the verified systemd PID of a host, running commands inside it
- services, images: DNS, Pebble and the registry next to a host; the test images
- boot: nspawn boot, shutdown and health of a host
- commands, nsenter_shim, cli: the labctl commands, the nsenter shim, argument parsing

Standard library only.  Every external command is an argv list.
"""
