"""The ``lab`` fixture: labkit (lab/labkit, the code of lab/labctl) pointed at tmp_path.

Its state and cache directories and a fake /proc (``procs.PROC``) that the tests fill with
processes (lab_helpers.FakeLab).  Nothing here touches the real lab, its processes or files.
"""

import pytest
from lab_helpers import FakeLab
from labkit import config, procs


@pytest.fixture
def lab(tmp_path, monkeypatch):
    fake = FakeLab(tmp_path)
    monkeypatch.setattr(config, "STATE_DIR", str(fake.state))
    monkeypatch.setattr(config, "CACHE_DIR", str(fake.cache))
    monkeypatch.setattr(config, "CGROUP_PARENT", config.cgroup_parent(str(fake.state)))
    monkeypatch.setattr(procs, "PROC", str(fake.proc))
    return fake
