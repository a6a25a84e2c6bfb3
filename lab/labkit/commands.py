# SPDX-License-Identifier: GPL-3.0-or-later
"""The labctl commands (deps, build, up, app-images, down, reboot, pid, exec, status,
inventory)."""

import contextlib
import os
import shutil
import sys
import time

from . import config
from .appimages import push_app_images
from .boot import boot, host_health, release_nspawn_run, remove_cgroups, require_tools, teardown
from .ca import ensure_ca
from .config import (
    CGROUP_HIERARCHIES,
    DEFAULT_RELEASE,
    IMAGE_TAGS,
    INNER_PATH,
    MACHINE_PACKAGES,
    PEBBLE_PORT,
    REGISTRY_HOST,
    REGISTRY_PORT,
    REGISTRY_USER,
    RELEASES,
)
from .hosts import (
    check_name,
    enter_host_cgroup,
    host_dir,
    host_lock,
    host_rootfs,
    host_run,
    known_hosts,
    load_state,
    nsenter_all,
    verify_host_pid,
)
from .images import image_ref, push_images
from .procs import marked_pids, proc_matches, stop_pids, wait_gone
from .recipe import recipe_hash
from .rootfs import build_rootfs, check_release, ensure_rootfs, rootfs_info
from .services import start_services, stop_services
from .util import LabError, clean_env, fmt_s, run, say, warn


def dpkg_installed(pkg):
    rc, out, _ = run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}", pkg], check=False, capture=True
    )
    return rc == 0 and out.strip() == "installed"


def cmd_deps(args):
    missing = [p for p in MACHINE_PACKAGES if not dpkg_installed(p)]
    if missing:
        say(f"installing {' '.join(missing)}")
        env = clean_env({"DEBIAN_FRONTEND": "noninteractive"})
        run(["apt-get", "update"], env=env, what="apt-get update")
        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            env=env,
            what="apt-get install",
        )
    else:
        say("machine packages present")
    ensure_tun()
    return 0


def ensure_tun():
    tun = "/dev/net/tun"
    try:
        st = os.stat(tun)
    except FileNotFoundError:
        raise LabError(f"{tun} does not exist: rootless podman networking needs it") from None
    if st.st_mode & 0o777 != 0o666:
        os.chmod(tun, 0o666)
        say(f"chmod 0666 {tun} (slirp4netns/pasta of rootless podman need it)")
    ensure_inotify()


# The lab hosts share this machine's kernel and its root's inotify instances (their
# /proc/sys is read-only): each hosting's two trigger path units take one each in a lab
# host's systemd, so the 128 of a default Debian stop at about 60 hostings across all lab
# hosts. The host role raises the same limit on a real pod host.
INOTIFY_INSTANCES = "/proc/sys/fs/inotify/max_user_instances"
INOTIFY_MIN = 1024


def ensure_inotify(path=INOTIFY_INSTANCES, minimum=INOTIFY_MIN):
    try:
        with open(path, encoding="ascii") as handle:
            current = int(handle.read().strip())
    except (OSError, ValueError):
        return
    if current < minimum:
        with open(path, "w", encoding="ascii") as handle:  # a sysctl: written in place
            handle.write(f"{minimum}\n")
        say(f"fs.inotify.max_user_instances {current} -> {minimum} (lab hosts' trigger units)")


def cmd_build(args):
    check_release(args.release)
    build_rootfs(args.release, force=args.force)
    return 0


def summary(name, st, spid):
    hd = host_dir(name)
    t = st.get("timings_s", {})
    lines = [
        f"lab host {name} ({st['release']}) is up: systemd PID {spid}",
        f"  exec:      {sys.argv[0]} exec {name} -- CMD...",
        f"  ACME:      https://127.0.0.1:{PEBBLE_PORT}/dir  (root CA: {hd}/pebble-root.pem)",
        f"  registry:  {REGISTRY_HOST}:{REGISTRY_PORT}  user {REGISTRY_USER}, "
        f"password in {hd}/registry-password",
        f"  images:    {', '.join(image_ref(tag) for tag in IMAGE_TAGS)}",
    ]
    if t:
        lines.append("  timings:   " + ", ".join(f"{k} {v} s" for k, v in t.items()))
    print("\n".join(lines), flush=True)


def cmd_up(args):
    name = args.name
    check_name(name)
    if getattr(args, "share_with", ""):
        check_name(args.share_with)
    if args.release:
        check_release(args.release)
    require_tools()
    ensure_tun()
    with host_lock(name):
        st = load_state(name)
        host_ok, problem, desc = host_health(name, st)
        if host_ok:
            if args.release and args.release != st.get("release"):
                raise LabError(
                    f"lab host {name} is up with {st.get('release')}, not {args.release}: "
                    f"run `labctl down {name}` first"
                )
            spid = verify_host_pid(name, st)
            if problem is None:
                say(
                    f"lab host {name} is up and healthy "
                    f"({st['release']}, systemd PID {spid}, {desc})"
                )
                return 0
            say(f"lab host {name} is up but {problem}: restarting the lab services")
            start_services(name, st, spid)
            push_images(name, st, spid)
            summary(name, st, spid)
            return 0
        release = args.release or DEFAULT_RELEASE
        if st or os.path.lexists(host_dir(name)) or marked_pids(host_dir(name)):
            say(f"lab host {name} is not healthy ({desc}): cleaning up the leftovers")
            teardown(name, quiet=False)
        ensure_rootfs(release)
        ensure_ca()
        say(f"booting lab host {name} ({release})")
        st = {
            "name": name,
            "release": release,
            "phase": "copying",
            "rootfs_hash": recipe_hash(release),
            "cert_validity": args.cert_validity,
            "share_with": getattr(args, "share_with", ""),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        spid = boot(name, release, st, fresh=True)
        summary(name, st, spid)
    return 0


def cmd_app_images(args):
    """Build (cached) and push the application images to each named, running lab host."""
    for name in args.names:
        check_name(name)
        with host_lock(name):
            push_app_images(name, verify_host_pid(name), force=args.force)
    return 0


def cmd_reboot(args):
    """Power the host off and boot the same root file system again (state survives)."""
    name = args.name
    check_name(name)
    require_tools()
    with host_lock(name):
        st = load_state(name)
        if not st or not os.path.isdir(host_rootfs(name)) or st.get("phase") != "ready":
            raise LabError(f"lab host {name} is not up: use `labctl up {name}`")
        t0 = time.monotonic()
        stop_services(name, st)
        try:
            spid = verify_host_pid(name, st)
        except LabError:
            spid = None
        if spid:
            say(f"powering off {name}")
            try:
                host_run(spid, ["systemctl", "poweroff"], check=False, capture=True, timeout=15)
            except LabError as exc:
                warn(f"asking lab host {name} to power off: {exc}")
        recs = [r for r in (st.get("nspawn"), st.get("systemd")) if r]
        alive = wait_gone([r["pid"] for r in recs if proc_matches(r)], config.STOP_TIMEOUT)
        if alive:
            warn(f"{name} did not power off within {config.STOP_TIMEOUT:.0f} s: terminating it")
            stop_pids([r for r in recs if r["pid"] in alive], f"lab host {name}")
        remove_cgroups(name)
        st["phase"] = "booting"
        say(f"booting {name} again")
        spid = boot(name, st["release"], st, fresh=False)
        say(f"rebooted {name} in {fmt_s(time.monotonic() - t0)}")
        summary(name, st, spid)
    return 0


def cmd_down(args):
    if args.all == bool(args.names):
        raise LabError("give host names or --all")
    names = known_hosts() if args.all else args.names
    for name in names:
        check_name(name)
    for name in names:
        with host_lock(name):
            if not teardown(name):
                say(f"lab host {name} is not up")
    if not [n for n in known_hosts()]:
        release_nspawn_run()
        for h in CGROUP_HIERARCHIES:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(h, config.CGROUP_PARENT))
    return 0


def cmd_pid(args):
    print(verify_host_pid(args.name))
    return 0


def cmd_exec(args):
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise LabError("usage: labctl exec NAME -- CMD...")
    spid = verify_host_pid(args.name)
    env = clean_env()
    if os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    sys.stdout.flush()
    argv = nsenter_all(spid, cmd)
    nsenter = shutil.which("nsenter", path=INNER_PATH)
    if not nsenter:
        raise LabError("nsenter not found (util-linux)")
    enter_host_cgroup(spid)
    os.execve(nsenter, argv, env)


def cmd_status(args):
    rows = []
    for name in known_hosts():
        st = load_state(name)
        if not st:
            rows.append((name, "?", "broken (no state)", "-", "-"))
            continue
        host_ok, problem, desc = host_health(name, st)
        if host_ok:
            spid = str(verify_host_pid(name, st))
            state = desc
            if st.get("rootfs_hash") != recipe_hash(st.get("release", DEFAULT_RELEASE)):
                state += " (older recipe: down + up to refresh)"
            services = "ok" if problem is None else problem
        else:
            spid, state, services = "-", f"down ({desc})", "-"
        rows.append((name, st.get("release", "?"), state, spid, services))
    if rows:
        w = [
            max(len(r[i]) for r in rows + [("NAME", "RELEASE", "STATE", "PID", "SERVICES")])
            for i in range(5)
        ]
        for r in [("NAME", "RELEASE", "STATE", "PID", "SERVICES")] + rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    else:
        print("no lab hosts")
    for release in RELEASES:
        info = rootfs_info(release)
        if not info:
            print(f"rootfs {release}: not built")
        else:
            cur = (
                "current"
                if info.get("recipe_hash") == recipe_hash(release)
                else "OUTDATED (recipe changed)"
            )
            print(
                f"rootfs {release}: {cur}, built {info.get('built')}, {info.get('size_mb')} MB, "
                f"build {info.get('timings_s', {}).get('total')} s"
            )
    return 0


def cmd_inventory(args):
    me = os.path.abspath(sys.argv[0]) if not args.labctl else args.labctl
    print("---")
    print("# generated by labctl inventory: lab hosts reached through the lab_nsenter connection")
    print("# (lab/connection_plugins: it asks `labctl pid NAME` itself and fails closed)")
    print("all:")
    print("  hosts:")
    for name in args.names:
        check_name(name)
        hd = host_dir(name)
        st = load_state(name) or {}
        print(f"    {name}:")
        print("      ansible_connection: lab_nsenter")
        print(f"      ansible_labctl: {me}")
        print("      ansible_python_interpreter: /usr/bin/python3")
        print(f"      lab_release: {st.get('release', args.release or DEFAULT_RELEASE)}")
        print(f'      lab_registry: "{REGISTRY_HOST}:{REGISTRY_PORT}"')
        print(f"      lab_registry_username: {REGISTRY_USER}")
        print(f"      lab_registry_password_file: {hd}/registry-password")
        print(f'      lab_acme_directory: "https://127.0.0.1:{PEBBLE_PORT}/dir"')
        print(f"      lab_pebble_root: {hd}/pebble-root.pem")
        print(f"      lab_ca: {hd}/lab-ca.pem")
        print(f"      lab_images: [{', '.join(repr(image_ref(t)) for t in IMAGE_TAGS)}]")
    return 0
