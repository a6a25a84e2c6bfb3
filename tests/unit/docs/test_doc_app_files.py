"""The worked examples of docs/tenant.md show the very files the apps molecule scenario
runs: every entry point and configuration file of the lab's application images
(lab/appimage/rootfs, built into lab/php-pg and lab/multi) appears in the page, whole and
unchanged, as a fenced block. An edit to either side that the other does not follow fails
here, so the examples cannot drift from what is tested on Debian 12 and 13."""

import pytest
from podspec_helpers import ROOT

from .test_doc_pods import fenced_blocks

LAYER = ROOT / "lab" / "appimage" / "rootfs"
SHOWN = [
    "usr/local/bin/app-db",
    "usr/local/bin/app-adminer",
    "srv/adminer/index.php",
    "usr/local/bin/app-multi",
    "etc/app/supervisord.conf",
    "etc/app/nginx.conf",
    "etc/app/php-fpm.conf",
    "usr/local/bin/app-worker",
]


def blocks():
    return [body for _, _, body, _ in fenced_blocks((ROOT / "docs" / "tenant.md").read_text())]


@pytest.mark.parametrize("name", SHOWN)
def test_the_page_shows_the_tested_file_unchanged(name):
    text = (LAYER / name).read_text()
    assert text in blocks(), "%s is not shown unchanged in docs/tenant.md" % name


def test_every_file_of_the_images_is_shown_or_is_the_applications_own():
    files = {str(path.relative_to(LAYER)) for path in LAYER.rglob("*") if path.is_file()}
    # the notes application's code and the test-only version page are not examples
    assert files - set(SHOWN) == {"srv/notes/index.php", "srv/adminer/version.php"}
