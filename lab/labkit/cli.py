# SPDX-License-Identifier: GPL-3.0-or-later
"""labctl: build, boot and tear down the webhosting.pods lab hosts.

A lab host is a Debian root file system booted with systemd as PID 1 inside
systemd-nspawn (private network: loopback only).  Next to each host, in the
host's network namespace but from this machine's binaries, run the lab
services: DNS (pebble-challtestsrv), the Pebble ACME CA and an OCI registry
(docker-registry) with htpasswd auth and test images.  See docs/lab.md.

Standard library only.  Every external command is an argv list.
"""

import argparse
import os
import signal
import sys

from .commands import (
    cmd_app_images,
    cmd_build,
    cmd_deps,
    cmd_down,
    cmd_exec,
    cmd_inventory,
    cmd_pid,
    cmd_reboot,
    cmd_status,
    cmd_up,
)
from .config import DEFAULT_RELEASE, RELEASES
from .nsenter_shim import nsenter_shim
from .util import LabError


def build_parser():
    """labctl's argument parser: each command sets func, the cmd_* that runs it."""
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("deps", help="install the machine packages the lab needs")
    p.set_defaults(func=cmd_deps)

    p = sub.add_parser("build", help="build and cache a lab root file system")
    p.add_argument("--release", default=DEFAULT_RELEASE, choices=RELEASES)
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("up", help="boot lab host NAME with its services (idempotent)")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--release",
        choices=RELEASES,
        default=None,
        help=f"Debian release of a new host (default {DEFAULT_RELEASE})",
    )
    p.add_argument(
        "--cert-validity",
        type=int,
        default=0,
        metavar="SECONDS",
        help="lifetime of certificates Pebble issues (default: Pebble's 5 years)",
    )
    p.add_argument(
        "--share-with",
        default="",
        metavar="HOST",
        help="a new host takes lab host HOST's registry password and tenant keys"
        " (two pod hosts of one provider)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "app-images",
        help="build (cached) and push the application images to running lab hosts",
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--force", action="store_true", help="rebuild the cached base layer")
    p.set_defaults(func=cmd_app_images)

    p = sub.add_parser("down", help="stop lab host(s) and remove every process, mount and file")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every lab host")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("reboot", help="power lab host NAME off and boot it again (keeps its disk)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_reboot)

    p = sub.add_parser("pid", help="print the verified systemd PID of lab host NAME (fails closed)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_pid)

    p = sub.add_parser("exec", help="run CMD as root in lab host NAME (labctl exec NAME -- CMD...)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("status", help="list lab hosts and the cached root file systems")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("inventory", help="print an Ansible inventory (YAML) for lab hosts")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--release", choices=RELEASES, default=None)
    p.add_argument(
        "--labctl", default=None, help="path to labctl in the lookup (default: absolute)"
    )
    p.set_defaults(func=cmd_inventory)
    return parser


def main(argv=None):
    if os.path.basename(sys.argv[0]) == "nsenter" and argv is None:
        return nsenter_shim(sys.argv[1:])
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `labctl status | head` ends quietly

    def terminated(signum, frame):
        raise SystemExit(128 + signum)  # unwinds: a half-booted host is torn down

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    if os.geteuid() != 0:
        print("labctl: must run as root", file=sys.stderr)
        return 1
    try:
        return args.func(args) or 0
    except LabError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130
