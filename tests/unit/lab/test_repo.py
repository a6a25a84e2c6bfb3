"""labkit.repo and the recipe split: the bare root file system, the offline repository.

The repository tests build real .deb files (dpkg-deb), index them with apt-ftparchive and
read them back with a real apt-get, offline, in a directory of its own.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from labkit import config, recipe, repo

PROJECT = Path(__file__).resolve().parents[3]
# Debian major version -> lab release (roles/host/vars/main.yml is keyed by the major)
MAJORS = {"12": "bookworm", "13": "trixie"}


def load(path):
    return yaml.safe_load((PROJECT / path).read_text())


def role_packages():
    """{release: every package the roles may install there}, from the roles' own files."""
    host = load("roles/host/defaults/main.yml")
    host_vars = load("roles/host/vars/main.yml")
    ingress = load("roles/ingress/defaults/main.yml")
    network = host_vars["__host_network_packages"]
    out = {}
    for major, release in MAJORS.items():
        r = host_vars["__host_release_defaults"][major]
        out[release] = (
            set(host["host_packages"])
            | set(r["packages"])
            | {network[cmd] for cmd in r["network_cmds"]}
            | {r["runtime"]}
            | set(ingress["ingress_packages"])
        )
    return out


def test_every_release_of_the_roles_is_a_lab_release():
    assert set(MAJORS.values()) == set(config.RELEASES)
    assert set(load("roles/host/vars/main.yml")["__host_release_defaults"]) == set(MAJORS)


@pytest.mark.parametrize("release", config.RELEASES)
def test_the_repository_holds_every_package_a_role_installs(release):
    missing = role_packages()[release] - set(recipe.recipe_for(release)["repo_packages"])
    assert not missing, f"add to RECIPE repo_packages: {sorted(missing)}"


@pytest.mark.parametrize("release", config.RELEASES)
def test_no_package_a_role_installs_is_in_the_bare_root_file_system(release):
    r = recipe.recipe_for(release)
    installed = set(r["include"]) | set(r["test_tools"])
    assert not installed & role_packages()[release]
    assert not installed & set(r["repo_packages"])


def test_the_cloud_image_base_has_what_ansible_and_the_tests_use():
    include = set(recipe.RECIPE["include"])
    # Ansible: python3, python3-apt; the tests: ssh/sftp, curl, ss/ip, ps
    assert {"python3", "python3-apt", "openssh-client", "curl", "iproute2", "procps"} <= include
    assert "openssh-server" not in include  # the host role installs it


def make_deb(tmp, name, version="1.0", depends=None):
    root = tmp / f"{name}-src"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc" / name).mkdir(parents=True)
    (root / "usr/share/doc" / name / "README").write_text(f"{name}\n")
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: lab <lab@example.test>\nDescription: lab test package {name}\n"
    )
    if depends:
        control += f"Depends: {depends}\n"
    (root / "DEBIAN/control").write_text(control)
    # dpkg-deb checks the modes; other tests may leave a strict umask behind
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = tmp / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


needs_tools = pytest.mark.skipif(
    not (shutil.which("dpkg-deb") and shutil.which("apt-ftparchive") and shutil.which("apt-get")),
    reason="dpkg-deb, apt-ftparchive (apt-utils) and apt-get needed",
)


def test_move_debs_moves_only_packages_and_makes_them_readable(tmp_path):
    src, dest = tmp_path / "archives", tmp_path / "repo"
    (src / "partial").mkdir(parents=True)
    (src / "lock").write_text("")
    for n in ("b_1_all.deb", "a_1_all.deb"):
        (src / n).write_text(n)
        (src / n).chmod(0o600)
    assert repo.move_debs(str(src), str(dest)) == ["a_1_all.deb", "b_1_all.deb"]
    assert sorted(os.listdir(src)) == ["lock", "partial"]
    assert all((dest / n).stat().st_mode & 0o777 == 0o644 for n in os.listdir(dest))


@needs_tools
def test_index_repo_makes_a_flat_repository_apt_reads_offline(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    make_deb(debs, "lab-app", depends="lab-lib (>= 2)")
    make_deb(debs, "lab-lib", version="2.1")
    dest = tmp_path / "repo"
    repo.move_debs(str(debs), str(dest))
    assert repo.index_repo(str(dest)) == 2
    packages = (dest / "Packages").read_text()
    assert "Filename: ./lab-app_1.0_all.deb" in packages
    assert "Filename: ./lab-lib_2.1_all.deb" in packages
    release = (dest / "Release").read_text()
    assert f"Origin: {repo.ORIGIN}" in release
    assert " Packages\n" in release  # its checksum

    # a real apt, offline, with the source line a lab host gets (the mount point replaced)
    state = tmp_path / "apt"
    for d in ("lists/partial", "cache/archives/partial", "etc"):
        (state / d).mkdir(parents=True)
    (state / "status").write_text("")
    sources = state / "etc/sources.list"
    sources.write_text(repo.sources_list().replace(recipe.REPO_MOUNT, str(dest)))
    opts = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}",
        "-oDebug::NoLocking=1",
        "-oAPT::Sandbox::User=root",
    ]
    subprocess.run(["apt-get", *opts, "update"], check=True, capture_output=True)
    plan = subprocess.run(
        ["apt-get", *opts, "install", "--simulate", "lab-app"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Inst lab-lib (2.1" in plan
    assert "Inst lab-app (1.0" in plan


def test_the_hosts_only_source_is_the_read_only_mount():
    lines = [x for x in repo.sources_list().splitlines() if not x.startswith("#")]
    assert lines == [f"deb [trusted=yes] file:{recipe.REPO_MOUNT} ./"]
    assert repo.mount_point("/x/rootfs") == "/x/rootfs" + recipe.REPO_MOUNT
