#!/usr/bin/env python3
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build userpod for tenants as one file: a zipapp of bin/userpod and the modules of
plugins/module_utils it imports (the policy engine).

    python3 tools/build_userpod.py [--output build/userpod.pyz]     (make userpod)

The modules are those bin/userpod reaches through its imports, followed by the standard
library's modulefinder, so no list is kept by hand. An import that is neither one of them,
nor the standard library, nor PyYAML stops the build: the archive could not run on a
laptop that has only Python and PyYAML.

The archive starts with `#!/usr/bin/env python3` and is executable. It runs the engine it
carries, never one installed on the machine. Building it needs only the standard library.
"""

import argparse
import importlib.util
import modulefinder
import os
import shutil
import sys
import sysconfig
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bin" / "userpod"
ENGINE_ROOT = ROOT / "plugins" / "module_utils"
DEFAULT_OUTPUT = ROOT / "build" / "userpod.pyz"
INTERPRETER = "/usr/bin/env python3"
# The oldest Python the archive runs on (subprocess.Popen's umask, used by `start`).
MIN_PYTHON = (3, 9)
# What the laptop needs besides Python: PyYAML.
THIRD_PARTY = frozenset({"yaml"})

MAIN = '''\
"""userpod in one file, built from bin/userpod by tools/build_userpod.py. It runs the
policy engine this archive carries (next to this file), never one found on the machine."""
import sys

if sys.version_info < {min_python!r}:
    sys.stderr.write(
        "userpod: needs Python {min_text} or newer, this is %d.%d\\n" % sys.version_info[:2]
    )
    sys.exit(3)

import userpod  # noqa: E402

sys.exit(userpod.main(engine_dirs=()))
'''


class BuildError(Exception):
    """Why the archive cannot be built."""


def _is_stdlib(name):
    top = name.partition(".")[0]
    if hasattr(sys, "stdlib_module_names"):  # Python 3.10+
        return top in sys.stdlib_module_names
    if top in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    origin = os.path.realpath(spec.origin)
    return origin.startswith(stdlib + os.sep) and "site-packages" not in origin


def engine_modules(script=SCRIPT, engine_root=ENGINE_ROOT):
    """{name in the archive: source file} of the modules under ``engine_root`` that
    ``script`` imports, directly or through one another. BuildError names any other import
    that is not the standard library or THIRD_PARTY."""
    engine_root = Path(engine_root).resolve()
    finder = modulefinder.ModuleFinder(path=[str(engine_root)])
    finder.run_script(str(script))
    modules = {}
    for module in finder.modules.values():
        if not module.__file__ or module.__name__ == "__main__":
            continue  # built into Python, or the script itself
        source = Path(module.__file__).resolve()
        if engine_root not in source.parents:
            continue
        modules[source.relative_to(engine_root).as_posix()] = source
    unknown = sorted(
        name
        for name in finder.badmodules
        if not _is_stdlib(name) and name.partition(".")[0] not in THIRD_PARTY
    )
    if unknown:
        raise BuildError(
            "%s imports %s: neither in %s nor the standard library nor PyYAML"
            % (script, ", ".join(unknown), engine_root)
        )
    if not modules:
        raise BuildError("%s imports nothing from %s" % (script, engine_root))
    return dict(sorted(modules.items()))


def build(output=DEFAULT_OUTPUT, script=SCRIPT, engine_root=ENGINE_ROOT):
    """Write the archive to ``output`` (through a temporary file and a rename, mode 0755);
    return the names it holds."""
    output = Path(output)
    files = {"userpod.py": Path(script)}
    files.update(engine_modules(script, engine_root))
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="userpod-build.") as staging:
        staging = Path(staging)
        for name, source in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        (staging / "__main__.py").write_text(
            MAIN.format(min_python=MIN_PYTHON, min_text="%d.%d" % MIN_PYTHON), encoding="utf-8"
        )
        fd, temporary = tempfile.mkstemp(
            dir=str(output.parent), prefix="." + output.name + ".", suffix=".tmp"
        )
        os.close(fd)
        try:
            zipapp.create_archive(staging, temporary, interpreter=INTERPRETER, compressed=True)
            os.chmod(temporary, 0o755)
            os.replace(temporary, output)
        except BaseException:
            os.unlink(temporary)
            raise
    return ["__main__.py", *files]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Build userpod as one file (a zipapp with the policy engine inside)."
    )
    parser.add_argument(
        "--output",
        "-o",
        default=str(DEFAULT_OUTPUT),
        metavar="FILE",
        help="where to write it (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        names = build(args.output)
    except (BuildError, OSError) as exc:
        print("build_userpod: %s" % exc, file=sys.stderr)
        return 1
    print("build_userpod: wrote %s (%s)" % (args.output, ", ".join(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
