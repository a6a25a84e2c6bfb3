# Copyright: webhosting.pods developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a command from a module: an argv list (no shell), no input, its output as text.

No Ansible import: module_utils/paths.py (validate) and module_utils/host_state.py
(systemctl show) run their commands through ``run``.
"""

import subprocess


class CommandError(Exception):
    """A command that could not be run, or did not finish in time."""


def run(argv, timeout, env=None):
    """The finished process of ``argv`` (stdout and stderr captured as text, undecodable
    bytes replaced; any exit status). Raises CommandError, with the reason, when the
    command cannot be started or runs longer than ``timeout`` seconds."""
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(str(exc)) from None
