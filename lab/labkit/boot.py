# SPDX-License-Identifier: GPL-3.0-or-later
"""Boot and shutdown of a lab host: copy, nspawn, wait for systemd, teardown, health."""

import contextlib
import errno
import os
import secrets
import shutil
import time

from . import config
from .config import (
    CGROUP_HIERARCHIES,
    INNER_PATH,
    LAB_NAMES,
    MARKER_ENV,
    NSPAWN_RUN,
    NSPAWN_RUN_SOURCE,
)
from .hosts import (
    host_dir,
    host_rootfs,
    host_run,
    join_cgroups,
    load_state,
    nsenter_all,
    save_state,
    system_state,
    verify_host_pid,
)
from .images import push_images
from .mounts import mountinfo, remove_tree
from .procs import (
    all_pids,
    children,
    marked_pids,
    proc_environ_has,
    proc_matches,
    proc_path,
    proc_record,
    proc_stat,
    start_logged,
    stat_key,
    stop_pids,
    wait_gone,
)
from .recipe import REPO_MOUNT
from .repo import repo_dir
from .rootfs import rootfs_current, rootfs_dir, swap_lock
from .services import registry_binary, services_healthy, start_services, stop_services
from .util import LabError, clean_env, fmt_s, replace_file, run, say, tail, warn


def require_tools():
    missing = [
        t
        for t in (
            "systemd-nspawn",
            "nsenter",
            "pebble",
            "pebble-challtestsrv",
            "htpasswd",
            "openssl",
            "curl",
            "ss",
            "debootstrap",
        )
        if not shutil.which(t, path=INNER_PATH)
    ]
    if not os.access("/bin/busybox", os.X_OK):
        missing.append("busybox (busybox-static)")
    if missing:
        raise LabError(f"missing on this machine: {', '.join(missing)} (run `labctl deps`)")
    registry_binary()


def ensure_nspawn_run():
    """systemd-nspawn refuses to clean up under a /run that is not a tmpfs."""
    entries = [m for m in mountinfo() if m[0] == NSPAWN_RUN]
    if entries and entries[-1][1] == "tmpfs":
        return
    os.makedirs(NSPAWN_RUN, exist_ok=True)
    run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "mode=0755,nosuid,nodev,size=16m",
            NSPAWN_RUN_SOURCE,
            NSPAWN_RUN,
        ],
        what=f"mount tmpfs on {NSPAWN_RUN}",
    )


def release_nspawn_run():
    """Unmount our tmpfs on /run/systemd/nspawn once no systemd-nspawn runs on this machine."""
    if any((proc_stat(p) or ("",))[0] == "systemd-nspawn" for p in all_pids()):
        return
    entries = [m for m in mountinfo() if m[0] == NSPAWN_RUN]
    if entries and entries[-1][2] == NSPAWN_RUN_SOURCE and entries[-1][1] == "tmpfs":
        run(["umount", NSPAWN_RUN], check=False, capture=True)


def cgroup_dirs(name):
    return [
        os.path.join(h, config.CGROUP_PARENT, name) for h in CGROUP_HIERARCHIES if os.path.isdir(h)
    ]


def remove_cgroups(name):
    for d in cgroup_dirs(name):
        if not os.path.isdir(d):
            continue
        for root, _, _ in sorted(os.walk(d, topdown=False), key=lambda x: -len(x[0])):
            deadline = time.monotonic() + 5
            while True:
                try:
                    os.rmdir(root)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        warn(f"cannot remove cgroup {root}: {exc}")
                        break
                    time.sleep(0.2)
    for h in CGROUP_HIERARCHIES:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(h, config.CGROUP_PARENT))


def copy_rootfs(name, release):
    hd = host_dir(name)
    tmp = os.path.join(hd, "rootfs.tmp")
    remove_tree(tmp)
    with swap_lock(release, shared=True):
        if not rootfs_current(release):
            raise LabError(f"the {release} rootfs changed while waiting; run `labctl up` again")
        run(
            ["cp", "-a", "--reflink=auto", rootfs_dir(release), tmp],
            what="copying the rootfs",
            env=clean_env({MARKER_ENV: hd}),
        )
        copy_repo(name, release)
    os.rename(tmp, host_rootfs(name))


def host_repo(name):
    return os.path.join(host_dir(name), "apt-repo")


def copy_repo(name, release):
    """The host's own copy of the offline repository, of the same build as its rootfs:
    hard links (instant, no space; nobody writes: it is mounted read-only), a real copy
    where the state directory is on another file system. A rebuild of the cache while
    the host runs does not take its repository away."""
    dest = host_repo(name)
    remove_tree(dest)
    env = clean_env({MARKER_ENV: host_dir(name)})
    rc = run(["cp", "-a", "--link", repo_dir(release), dest], check=False, capture=True, env=env)
    if rc[0] != 0:
        remove_tree(dest)
        run(["cp", "-a", repo_dir(release), dest], what="copying the repository", env=env)


def customise_rootfs(name):
    """Host identity and name resolution, on the fresh copy (before boot)."""
    r = host_rootfs(name)
    replace_file(os.path.join(r, "etc/hostname"), name + "\n")
    replace_file(os.path.join(r, "etc/machine-id"), secrets.token_hex(16) + "\n")
    replace_file(
        os.path.join(r, "etc/resolv.conf"),
        "# webhosting.pods lab: pebble-challtestsrv answers every name with 127.0.0.1\n"
        "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
    )
    replace_file(
        os.path.join(r, "etc/hosts"),
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
        f"127.0.0.1\t{' '.join(LAB_NAMES)}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    )


def start_nspawn(name, st):
    hd = host_dir(name)
    rootfs = host_rootfs(name)
    ensure_nspawn_run()
    cgroups = cgroup_dirs(name)
    for d in cgroups:
        os.makedirs(d, exist_ok=True)

    def enter_cgroups():  # runs in the child before exec; nspawn must not start outside
        for _d, exc in join_cgroups(cgroups):
            raise exc

    argv = [
        "systemd-nspawn",
        "--quiet",
        "-D",
        rootfs,
        "-b",
        "-M",
        name,
        "--register=no",
        "--keep-unit",
        "--private-network",
        "--bind=/dev/net/tun",
    ]
    if os.path.isdir(host_repo(name)):  # hosts booted by an older labctl have none
        argv.append(f"--bind-ro={host_repo(name)}:{REPO_MOUNT}")
    if os.path.exists("/dev/fuse"):  # fuse-overlayfs; native overlay does not need it
        argv.append("--bind=/dev/fuse")
    argv += ["--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"]
    env = clean_env({"SYSTEMD_SECCOMP": "0", MARKER_ENV: hd})
    log = os.path.join(hd, "nspawn.log")
    proc = start_logged(
        argv,
        log,
        env=env,
        comm="systemd-nspawn",
        what="systemd-nspawn",
        timeout=10,
        preexec_fn=enter_cgroups,
    )
    st["nspawn"] = proc_record(proc.pid)
    st["systemd"] = None
    st["phase"] = "booting"
    save_state(name, st)
    # the container's systemd: child of nspawn, root = our rootfs
    root_key = stat_key(rootfs)
    deadline = time.monotonic() + 20
    while True:
        for c in children(proc.pid):
            stat = proc_stat(c)
            try:
                ok = stat and stat[0] == "systemd" and stat_key(proc_path(c, "root")) == root_key
            except OSError:
                ok = False
            if ok:
                st["systemd"] = proc_record(c)
                save_state(name, st)
                return proc
        if proc.poll() is not None:
            raise LabError(
                f"systemd-nspawn exited with status {proc.returncode}; log {log}:\n" + tail(log)
            )
        if time.monotonic() > deadline:
            raise LabError(f"no systemd started in lab host {name}; log {log}:\n" + tail(log))
        time.sleep(0.05)


def wait_booted(name, st, proc):
    spid = verify_host_pid(name, st)
    deadline = time.monotonic() + config.BOOT_TIMEOUT
    state = "?"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"lab host {name} stopped while booting (nspawn exit {proc.returncode}); "
                f"log {host_dir(name)}/nspawn.log:\n"
                + tail(os.path.join(host_dir(name), "nspawn.log"))
            )
        state = system_state(spid)
        if state in ("running", "degraded"):
            break
        if state in ("maintenance", "stopping"):
            break
        time.sleep(0.3)
    if state == "degraded":
        failed = host_run(
            spid,
            ["systemctl", "--failed", "--no-legend", "--plain", "--no-pager"],
            check=False,
            capture=True,
        )
        warn(f"lab host {name} is degraded; failed units:\n{failed[1].strip()}")
    elif state != "running":
        jobs = host_run(spid, ["systemctl", "list-jobs", "--no-pager"], check=False, capture=True)
        raise LabError(
            f"lab host {name} did not finish booting within {config.BOOT_TIMEOUT:.0f} s "
            f"(state {state}); jobs:\n{jobs[1].strip()}"
        )
    return spid, state


def teardown(name, quiet=False):
    """Stop everything of host NAME that labctl started, unmount, remove its directory."""
    hd = host_dir(name)
    st = load_state(name) or {}
    rootfs = host_rootfs(name)
    marker = f"{MARKER_ENV}={hd}".encode()
    t0 = time.monotonic()
    did = False

    # services first (they keep the host's network namespace alive)
    if st.get("services") or any(
        proc_stat(p) and proc_stat(p)[0] != "systemd-nspawn" for p in marked_pids(hd)
    ):
        stop_services(name, st)
        did = True

    # the host: our nspawn (recorded or marked) and its systemd (recorded, verified by root)
    nspawns = []
    if proc_matches(st.get("nspawn")) and proc_environ_has(st["nspawn"]["pid"], marker):
        nspawns.append(st["nspawn"])
    for p in marked_pids(hd):
        stat = proc_stat(p)
        if stat and stat[0] == "systemd-nspawn" and all(r["pid"] != p for r in nspawns):
            nspawns.append(proc_record(p))
    try:
        root_key = stat_key(rootfs)
    except OSError:
        root_key = None
    inits = []
    candidates = [st.get("systemd")] if st.get("systemd") else []
    for n in nspawns:
        candidates += [proc_record(c) for c in children(n["pid"])]
    for rec in candidates:
        # the container's init: systemd, or nspawn's inner child before it execs systemd
        if not rec or not proc_matches(rec) or rec["pid"] <= 1:
            continue
        if rec["comm"] not in ("systemd", "systemd-nspawn"):
            continue
        try:
            if root_key and stat_key(proc_path(rec["pid"], "root")) == root_key:
                if all(r["pid"] != rec["pid"] for r in inits + nspawns):
                    inits.append(rec)
        except OSError:
            pass
    if nspawns or inits:
        did = True
        if not quiet:
            say(f"stopping lab host {name}")
        asked = False
        for rec in inits:
            if rec["comm"] != "systemd":
                continue
            try:
                rc, _, _ = run(
                    nsenter_all(rec["pid"], ["systemctl", "poweroff"]),
                    check=False,
                    capture=True,
                    timeout=15,
                )
                asked = asked or rc == 0
            except LabError as exc:
                warn(f"asking lab host {name} to power off: {exc}")
        everything = nspawns + inits
        alive = [r["pid"] for r in everything]
        if asked:
            alive = wait_gone(alive, config.STOP_TIMEOUT)
            if alive:
                warn(f"lab host {name} did not power off within {config.STOP_TIMEOUT:.0f} s")
        if alive:
            # SIGTERM makes nspawn shut its container down; SIGKILL after 10 s
            stop_pids([r for r in everything if r["pid"] in alive], f"lab host {name}")

    if os.path.lexists(hd):
        remove_tree(hd)
        did = True
    remove_cgroups(name)
    if did and not quiet:
        say(f"lab host {name} is down ({fmt_s(time.monotonic() - t0)})")
    return did


def boot(name, release, st, fresh=True):
    """Copy (if fresh), boot, start services and images.  Tears down on failure."""
    hd = host_dir(name)
    timings = {}
    t0 = time.monotonic()
    try:
        if fresh:
            os.makedirs(hd, mode=0o755, exist_ok=True)
            save_state(name, st)
            t = time.monotonic()
            copy_rootfs(name, release)
            customise_rootfs(name)
            timings["copy"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        proc = start_nspawn(name, st)
        spid, state = wait_booted(name, st, proc)
        timings["boot"] = round(time.monotonic() - t, 1)
        st["phase"] = "services"
        st["system_state_at_boot"] = state
        save_state(name, st)
        start_services(name, st, spid)
        timings["services"] = st["timings_s"]["services"]
        t = time.monotonic()
        push_images(name, st, spid)
        timings["images"] = round(time.monotonic() - t, 1)
        timings["total"] = round(time.monotonic() - t0, 1)
        st["timings_s"] = timings
        st["phase"] = "ready"
        st["ready_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        save_state(name, st)
        return spid
    except BaseException:
        if os.environ.get("LAB_KEEP_ON_FAILURE"):
            warn(f"LAB_KEEP_ON_FAILURE is set: leaving {name} as it is")
        else:
            warn(f"bringing up {name} failed: tearing it down")
            with contextlib.suppress(Exception):
                teardown(name, quiet=True)
        raise


def host_health(name, st):
    """(host_ok, services_problem or None, description)."""
    if not st:
        return False, None, "no state"
    if st.get("phase") != "ready":
        return False, None, f"interrupted in phase {st.get('phase')!r}"
    try:
        spid = verify_host_pid(name, st)
    except LabError as exc:
        return False, None, str(exc)
    state = system_state(spid)
    if state not in ("running", "degraded"):
        return False, None, f"system state {state}"
    return True, services_healthy(name, st, spid), state
