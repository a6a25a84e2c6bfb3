"""patch_module_args for the modules' unit tests, on every ansible-core the collection
supports: ansible.module_utils.testing has it from 2.19; before, a module reads its
arguments from ansible.module_utils.basic._ANSIBLE_ARGS (what ansible-core's own unit
tests set)."""

import contextlib
import json

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19 (make compat runs the tests with the lowest)
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        arguments = {"_ansible_remote_tmp": "/tmp", "_ansible_keep_remote_files": False}
        arguments.update(args or {})
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": arguments}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


__all__ = ["patch_module_args"]
