# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: render
short_description: Render templates with extra variables, cheaply, for many hostings at once
version_added: 0.2.0
description:
  - Renders template files like M(ansible.builtin.template) (the lookup) with the task's
    variables plus O(template_vars), and returns their texts.
  - Made for the roles' host-wide calls, which render the files of every hosting of a pod
    host in one task. The builtin lookup deep-copies every variable of the host for each
    file it renders (ansible-core 2.19) - on a pod host with its hostings, its facts and
    the getent tables that is about a second per hosting's file set. This lookup layers
    O(template_vars) over the variables without copying them; the templates must not
    change variables (Jinja C(set) only binds names local to the template).
options:
  _terms:
    description:
      - Template files, looked up in the role's C(templates) directory like the builtin
        lookup.
    required: true
  template_vars:
    description: Variables for the templates, overriding the task's variables.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Render a unit for one hosting
  ansible.builtin.debug:
    msg: >-
      {{ lookup('webhosting.pods.render', 'webhosting-pod.service.j2',
                template_vars={'__hosting': item}) }}
  loop: "{{ webhosting_hostings }}"
"""

RETURN = r"""
_raw:
  description: The rendered texts, one per term.
  type: list
  elements: str
"""

import os
from collections import ChainMap

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

try:  # ansible-core 2.19+
    from ansible._internal._templating._template_vars import generate_ansible_template_vars
except ImportError:  # pragma: no cover - older ansible-core
    from ansible.template import generate_ansible_template_vars

_TEXTS = {}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        extra = self.get_option("template_vars") or {}
        variables = variables or {}
        searchpath = []
        for path in variables.get("ansible_search_path", []):
            searchpath += [os.path.join(path, "templates"), path]
        results = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "templates", term)
            if not path:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            if path not in _TEXTS:
                _TEXTS[path] = self._loader.get_text_file_contents(path)
            # ansible_managed, template_path ... as the builtin lookup adds them
            generated = generate_ansible_template_vars(
                path=term,
                fullpath=path,
                include_ansible_managed="ansible_managed" not in variables,
            )
            layered = ChainMap(dict(extra), generated, variables)
            templar = self._templar.copy_with_new_env(
                available_variables=layered, searchpath=[os.path.dirname(path)] + searchpath
            )
            results.append(templar.template(trust_as_template(_TEXTS[path])))
        return results
