"""labkit.recipe and labkit.config: the rootfs cache key, names, releases, cgroup parents."""

import copy
import hashlib
import json

import pytest
from labkit import config, recipe
from labkit.hosts import check_name
from labkit.rootfs import check_release
from labkit.util import LabError

# The key of every cached root file system (last changed for the bare root file system
# and its offline repository). A change here rebuilds every cache (minutes per release):
# change RECIPE on purpose, then update these values.
RECIPE_HASHES = {
    "bookworm": "0d55dc96310f8697b139f8700de7abcc6e8d3d45534cef93f8a3bb14fb927bbc",
    "trixie": "faf9a08f74b5674826a8c1475130ad55c588a7773e7dd5d32836b67f89aaf028",
}


@pytest.mark.parametrize("release", config.RELEASES)
def test_recipe_hash_is_stable(release):
    assert recipe.recipe_hash(release) == RECIPE_HASHES[release]


def test_every_release_has_a_hash_here():
    assert set(RECIPE_HASHES) == set(config.RELEASES)


@pytest.mark.parametrize("release", config.RELEASES)
def test_recipe_hash_is_sha256_of_the_sorted_json(release):
    blob = json.dumps(recipe.recipe_for(release), sort_keys=True).encode()
    assert recipe.recipe_hash(release) == hashlib.sha256(blob).hexdigest()


def test_recipe_for_adds_the_release_packages_and_sorts():
    trixie = recipe.recipe_for("trixie")
    bookworm = recipe.recipe_for("bookworm")
    assert trixie["release"] == "trixie"
    assert set(trixie["repo_packages"]) - set(bookworm["repo_packages"]) == {"passt", "nftables"}
    for r in (trixie, bookworm):
        for key in ("include", "test_tools", "repo_packages", "mask"):
            assert r[key] == sorted(r[key])
        assert r["repo_source"] == "deb [trusted=yes] file:/srv/lab-apt ./\n"
    assert "podman" not in bookworm["include"]


def test_recipe_order_does_not_matter_but_content_does(monkeypatch):
    shuffled = copy.deepcopy(recipe.RECIPE)
    shuffled["repo_packages"].reverse()
    shuffled["include"].reverse()
    monkeypatch.setattr(recipe, "RECIPE", shuffled)
    assert recipe.recipe_hash("bookworm") == RECIPE_HASHES["bookworm"]
    for key in ("include", "test_tools", "repo_packages"):
        more = copy.deepcopy(recipe.RECIPE)
        more[key].append("vim")
        monkeypatch.setattr(recipe, "RECIPE", more)
        assert recipe.recipe_hash("bookworm") != RECIPE_HASHES["bookworm"], key
        assert recipe.recipe_hash("trixie") != RECIPE_HASHES["trixie"], key


def test_recipe_version_is_part_of_the_key(monkeypatch):
    bumped = dict(recipe.RECIPE, version=recipe.RECIPE["version"] + 1)
    monkeypatch.setattr(recipe, "RECIPE", bumped)
    assert recipe.recipe_hash("bookworm") != RECIPE_HASHES["bookworm"]


@pytest.mark.parametrize(
    "name",
    ["demo", "a", "ab", "lab-1", "x" * 32, "trixie2", "a-b-c"],
)
def test_valid_host_names(name):
    check_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "Demo", "1demo", "-demo", "demo-", "x" * 33, "de_mo", "de.mo", "../x", None],
)
def test_invalid_host_names(name):
    with pytest.raises(LabError, match="invalid lab host name"):
        check_name(name)


def test_a_trailing_newline_is_an_invalid_host_name():
    with pytest.raises(LabError, match="invalid lab host name"):
        check_name("demo\n")


def test_check_release():
    for release in config.RELEASES:
        check_release(release)
    with pytest.raises(LabError, match=r"unknown release 'sid' \(one of bookworm, trixie\)"):
        check_release("sid")


def test_cgroup_parent_of_the_default_lab():
    assert config.cgroup_parent("/var/lib/webhosting-pods-lab") == "webhosting-pods-lab"


def test_cgroup_parent_of_a_second_lab_is_its_own():
    a = config.cgroup_parent("/tmp/lab-a")
    b = config.cgroup_parent("/tmp/lab-b")
    digest = hashlib.sha256(b"/tmp/lab-a").hexdigest()[:8]
    assert a == f"webhosting-pods-lab-{digest}"
    assert a != b
    assert config.cgroup_parent("/tmp/lab-a") == a
