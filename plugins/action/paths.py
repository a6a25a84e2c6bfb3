# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of webhosting.pods.paths: renders the entries given as `template` into their
`content` on the controller, then runs the module.

A role's host-wide call converges the files of every hosting of a pod host at once; the
unit files among them are Jinja templates of the role (text a person reads). An entry
`{path, template: NAME.j2, vars: {...}}` is rendered with the task's variables, the
group's `vars` and the entry's own `vars` layered over them, without copying the host's
variables for each file (the builtin template lookup deep-copies them: about a second per
hosting's file set on a host with many hostings).
"""

import os
from collections import ChainMap

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.template import generate_ansible_template_vars

try:  # ansible-core 2.19+: a template file's text must be marked as trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - earlier ansible-core templates every string

    def trust_as_template(text):
        return text


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        self._texts = {}
        args = dict(self._task.args)
        try:
            if args.get("paths"):
                args["paths"] = self._rendered(
                    args["paths"], args.pop("vars", None) or {}, task_vars
                )
            if args.get("groups"):
                args["groups"] = [self._group(group, task_vars) for group in args["groups"]]
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(
            self._execute_module(
                module_name="webhosting.pods.paths", module_args=args, task_vars=task_vars
            )
        )
        return result

    def _group(self, group, task_vars):
        group = dict(group)
        extra = group.pop("vars", None) or {}
        group["paths"] = self._rendered(group.get("paths") or [], extra, task_vars)
        return group

    def _rendered(self, entries, extra, task_vars):
        out = []
        for entry in entries:
            if isinstance(entry, dict) and "template" in entry:
                entry = dict(entry)
                own = entry.pop("vars", None) or {}
                name = entry.pop("template")
                entry["content"] = self._render(
                    name, ChainMap(own, extra), task_vars, entry.get("path")
                )
            out.append(entry)
        return out

    def _render(self, name, extra, task_vars, dest):
        path = self._find_needle("templates", name)
        if path not in self._texts:
            with open(path, encoding="utf-8") as handle:
                self._texts[path] = handle.read()
        generated = generate_ansible_template_vars(name, path)
        if "ansible_managed" in task_vars:
            generated.pop("ansible_managed", None)
        variables = ChainMap(dict(extra), generated, task_vars)
        templar = self._templar.copy_with_new_env(
            available_variables=variables, searchpath=[os.path.dirname(path)]
        )
        try:
            return templar.template(trust_as_template(self._texts[path]))
        except Exception as exc:  # noqa: BLE001 - Jinja and Ansible raise many kinds
            raise AnsibleActionFail(f"{dest}: template {name}: {exc}") from exc
