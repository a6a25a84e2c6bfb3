"""The paths action renders the template entries of many hostings with Ansible's own
templar: entries of one template in one pass, byte-for-byte what rendering each alone
gives, and a failing entry still named by its file."""

import os
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.webhosting.pods.plugins.action import paths as action

ROOT = Path(__file__).resolve().parents[4]

TEMPLATES = {
    "plain.j2": "unit {{ __hosting.name }}\nExec={{ tool }} --name {{ __hosting.name }}\n",
    "no-newline.j2": "{{ __hosting.name }}",
    "control.j2": (
        "{% set who = __hosting.name | upper %}\n"
        "{% for port in __hosting.ports %}\nlisten {{ port }} ({{ loop.index }})\n{% endfor %}\n"
        "{%- if __hosting.ports | length > 1 %}\nmany {{ who }}\n{%- endif %}\n"
        "  end\n\n"
    ),
    "job.j2": "{{ __hosting.name }}: {{ __job.name }} at {{ __job.when }}\n",
    "fails.j2": "{{ __hosting.name }} {{ __hosting.missing.key }}\n",
}


class Recorder(action.ActionModule):
    """The action without a task: templates from a directory, counting the renders."""

    def __init__(self, directory, variables):
        self._directory = directory
        self._templar = Templar(loader=DataLoader(), variables=variables)
        self._texts = {}
        self._paths = {}
        self.passes = []

    def _find_needle(self, dirname, needle):
        assert dirname == "templates"
        return os.path.join(self._directory, needle)

    def _templar_for(self, name, extra, task_vars):
        self.passes.append(name)
        return super()._templar_for(name, extra, task_vars)


def trusted(variables):
    return {
        key: action.trust_as_template(value) if isinstance(value, str) else value
        for key, value in variables.items()
    }


@pytest.fixture(name="templates")
def templates_fixture(tmp_path):
    for name, text in TEMPLATES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def model(i):
    return {"name": f"h{i:02d}", "ports": list(range(8080, 8080 + i % 3))}


def alone(templates, task_vars, name, variables):
    return Recorder(str(templates), task_vars)._render(name, variables, task_vars, "/x")


@pytest.mark.parametrize("name", ["plain.j2", "no-newline.j2", "control.j2"])
def test_one_pass_per_template_gives_what_each_alone_gives(templates, name):
    task_vars = {"tool": "/usr/local/bin/userpod", "ansible_managed": "managed"}
    groups = [([{"path": f"/u/{i}", "template": name}], {"__hosting": model(i)}) for i in range(7)]
    recorder = Recorder(str(templates), task_vars)
    rendered = recorder._render_all(groups, task_vars)
    expected = [alone(templates, task_vars, name, {"__hosting": model(i)}) for i in range(7)]
    assert [entries[0]["content"] for entries in rendered] == expected
    assert [entries[0]["path"] for entries in rendered] == [f"/u/{i}" for i in range(7)]
    assert "template" not in rendered[0][0]
    # the first entry alone (the check) and then all seven together: two passes, not seven
    assert recorder.passes == [name, name]


def test_entries_own_vars_are_layered_over_their_groups(templates):
    jobs = [{"name": "backup", "when": "daily"}, {"name": "mail", "when": "hourly"}]
    groups = [
        (
            [{"path": f"/u/{i}/{job['name']}", "template": "job.j2", "vars": {"__job": job}}],
            {"__hosting": model(i)},
        )
        for i in range(3)
        for job in jobs
    ]
    rendered = Recorder(str(templates), {})._render_all(groups, {})
    contents = [entries[0]["content"] for entries in rendered]
    assert contents[:3] == [
        "h00: backup at daily\n",
        "h00: mail at hourly\n",
        "h01: backup at daily\n",
    ]


def test_a_failing_entry_is_named_by_its_file(templates):
    broken = dict(model(2), missing={"other": 1})
    groups = [
        (
            [{"path": "/u/0", "template": "fails.j2"}],
            {"__hosting": dict(model(0), missing={"key": 1})},
        ),
        ([{"path": "/u/broken", "template": "fails.j2"}], {"__hosting": broken}),
    ]
    with pytest.raises(AnsibleActionFail, match="/u/broken: template fails.j2"):
        Recorder(str(templates), {})._render_all(groups, {})


def test_an_output_that_differs_from_the_entry_alone_is_rendered_alone(templates, monkeypatch):
    recorder = Recorder(str(templates), {"tool": "t"})
    monkeypatch.setattr(
        recorder, "_render_together", lambda name, items, task_vars: ["wrong"] * len(items)
    )
    groups = [
        ([{"path": f"/u/{i}", "template": "plain.j2"}], {"__hosting": model(i)}) for i in range(3)
    ]
    rendered = recorder._render_all(groups, {"tool": "t"})
    assert [entries[0]["content"] for entries in rendered] == [
        f"unit h0{i}\nExec=t --name h0{i}\n" for i in range(3)
    ]


def test_the_pod_unit_of_many_hostings_in_one_pass():
    """The role's largest unit template, with the role's defaults as task variables."""
    templates = ROOT / "roles" / "hosting" / "templates"
    defaults = yaml.safe_load((ROOT / "roles" / "hosting" / "defaults" / "main.yml").read_text())
    task_vars = trusted(dict(defaults, ansible_managed="Ansible managed"))
    keys = (
        "pod_file state_dir auth_file provider_auth_file start_log tenant_auth_shown"
        " tenant_auth_file pod_log last_valid_file pod_file_shown status_file"
        " tenant_status_file rendered_file policy_file"
    ).split()
    hostings = [dict({key: f"/srv/h{i}/{key}" for key in keys}, name=f"h{i}") for i in range(20)]
    name = "webhosting-pod.service.j2"
    groups = [([{"path": f"/u/{h['name']}", "template": name}], {"__hosting": h}) for h in hostings]
    recorder = Recorder(str(templates), task_vars)
    rendered = [entries[0]["content"] for entries in recorder._render_all(groups, task_vars)]
    assert recorder.passes == [name, name]
    assert rendered[13] == alone(templates, task_vars, name, {"__hosting": hostings[13]})
    assert "\nExecStart=/usr/local/bin/userpod play --service" in rendered[13]
    assert "/srv/h13/rendered_file /srv/h13/policy_file\n" in rendered[13]
