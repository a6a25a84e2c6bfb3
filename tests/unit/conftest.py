"""Shared set-up for the unit tests.

- ``pod_policy`` (plugins/module_utils), ``labkit`` (lab/, the code of lab/labctl) and the
  helpers in this directory are importable by their plain names (pyproject.toml sets
  pythonpath too; this keeps ``pytest FILE`` working from anywhere).
- ``ansible_collections.webhosting.pods`` is importable: the repository is linked as
  ``.collections/ansible_collections/webhosting/pods`` (the link ``make collection`` makes;
  ``.collections`` is git-ignored) and that directory is put on sys.path.
- Hypothesis: at most 300 examples a test, no deadline, no example database in the repo.
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".collections"

for path in (ROOT / "plugins" / "module_utils", ROOT / "lab", Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def _link_collection():
    link = COLLECTIONS / "ansible_collections" / "webhosting" / "pods"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(os.path.relpath(ROOT, link.parent), link)
        except FileExistsError:  # another worker made it
            pass
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))


_link_collection()

settings.register_profile(
    "unit",
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))
