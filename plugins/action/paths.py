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

Jinja compiles a template each time Ansible renders it, which costs about ten times the
rendering itself (ansible-core 2.19 keeps no compiled templates): a no-op run of 100
hostings compiled the same half-dozen unit templates 600 times. Entries of one template
with the same variable names are therefore rendered in one pass: the template's text in
a `for` loop over the entries, each binding its own variables, the outputs split at a
separator no output can contain. Only the template's text and the Jinja around it are
public API. The first entry of each batch is also rendered alone and must come out
byte-for-byte the same, or the batch is rendered one entry at a time; so is a batch that
fails, which then names the file whose entry failed.
"""

import os
import uuid
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
        self._paths = {}
        args = dict(self._task.args)
        try:
            if args.get("paths"):
                args["paths"] = self._rendered(
                    args["paths"], args.pop("vars", None) or {}, task_vars
                )
            if args.get("groups"):
                groups = [dict(group) for group in args["groups"]]
                lists = [(g.get("paths") or [], g.pop("vars", None) or {}) for g in groups]
                for group, entries in zip(groups, self._render_all(lists, task_vars)):
                    group["paths"] = entries
                args["groups"] = groups
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(
            self._execute_module(
                module_name="webhosting.pods.paths", module_args=args, task_vars=task_vars
            )
        )
        return result

    def _rendered(self, entries, extra, task_vars):
        return self._render_all([(entries, extra)], task_vars)[0]

    def _render_all(self, lists, task_vars):
        """[(entries, extra vars)] -> the same lists, template entries given their content."""
        out = [list(entries) for entries, _ in lists]
        jobs = {}  # (template, variable names) -> [(list index, entry index, vars, dest)]
        for i, (entries, extra) in enumerate(lists):
            for j, entry in enumerate(entries):
                if isinstance(entry, dict) and "template" in entry:
                    entry = dict(entry)
                    own = entry.pop("vars", None) or {}
                    name = entry.pop("template")
                    out[i][j] = entry
                    variables = dict(ChainMap(own, extra))
                    key = (name, tuple(sorted(variables)))
                    jobs.setdefault(key, []).append((i, j, variables, entry.get("path")))
        for (name, _), batch in jobs.items():
            for (i, j, _, _), content in zip(batch, self._render_batch(name, batch, task_vars)):
                out[i][j]["content"] = content
        return out

    def _render_batch(self, name, batch, task_vars):
        """The contents of one template for each (.., .., vars, dest) of batch."""
        if len(batch) > 1 and all(key.isidentifier() for key in batch[0][2]):
            first = self._render(name, batch[0][2], task_vars, batch[0][3])
            together = self._render_together(name, [job[2] for job in batch], task_vars)
            if together is not None and together[0] == first:
                return together
        return [self._render(name, variables, task_vars, dest) for _, _, variables, dest in batch]

    def _render_together(self, name, items, task_vars):
        """One pass over items (None when that fails: each is then rendered alone)."""
        text = self._text(name)
        separator = f"\x00webhosting-pods-{uuid.uuid4().hex}\x00"
        binds = "".join(f"{{% set {key} = __webhosting_pods_item[{key!r}] %}}" for key in items[0])
        loop = (
            "{% for __webhosting_pods_item in __webhosting_pods_items %}"
            f"{binds}{text}{{{{ __webhosting_pods_separator }}}}{{% endfor %}}"
        )
        own = {"__webhosting_pods_items": items, "__webhosting_pods_separator": separator}
        try:
            rendered = self._templar_for(name, own, task_vars).template(trust_as_template(loop))
        except Exception:  # noqa: BLE001 - rendered alone below, which names the file
            return None
        parts = rendered.split(separator) if isinstance(rendered, str) else []
        if len(parts) != len(items) + 1 or parts[-1]:
            return None
        return parts[:-1]

    def _path(self, name):
        """The role's template file of that name, looked up once per run."""
        if name not in self._paths:
            self._paths[name] = self._find_needle("templates", name)
        return self._paths[name]

    def _text(self, name):
        path = self._path(name)
        if path not in self._texts:
            with open(path, encoding="utf-8") as handle:
                self._texts[path] = handle.read()
        return self._texts[path]

    def _templar_for(self, name, extra, task_vars):
        path = self._path(name)
        generated = generate_ansible_template_vars(name, path)
        if "ansible_managed" in task_vars:
            generated.pop("ansible_managed", None)
        variables = ChainMap(dict(extra), generated, task_vars)
        return self._templar.copy_with_new_env(
            available_variables=variables, searchpath=[os.path.dirname(path)]
        )

    def _render(self, name, extra, task_vars, dest):
        text = self._text(name)
        try:
            return self._templar_for(name, extra, task_vars).template(trust_as_template(text))
        except Exception as exc:  # noqa: BLE001 - Jinja and Ansible raise many kinds
            raise AnsibleActionFail(f"{dest}: template {name}: {exc}") from exc
