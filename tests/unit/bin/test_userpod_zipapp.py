"""The one-file userpod for tenants (tools/build_userpod.py, `make userpod`), built and then
copied out of the checkout, run as a tenant runs it: `python3 -I` (no checkout on sys.path)
with a clean environment.

- It prints what bin/userpod from the checkout prints, and exits with the same status.
- It holds bin/userpod's code and exactly the modules that code imports. The imports are
  followed here with ast, apart from the build's modulefinder, so an archive that misses a
  module fails these tests.
- docs/userpod.md is run: every `$ command` of its console blocks, against the page's own
  example files, prints what the page shows.
"""

import ast
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import fake_podman
import pytest
from podspec_helpers import PROVIDER_BASE, ROOT, USERPOD

BUILDER = ROOT / "tools" / "build_userpod.py"
ENGINE_ROOT = ROOT / "plugins" / "module_utils"
DOC = ROOT / "docs" / "userpod.md"
# The page's reader: their home and the pid their forwarder happens to get.
DOC_HOME = "/home/alice"
DOC_PID = "12345"
# A tenant's laptop: nothing but PATH (python3 -I ignores PYTHON* variables anyway).
CLEAN_ENV = {"PATH": os.defpath}

_spec = importlib.util.spec_from_file_location("build_userpod", BUILDER)
build_userpod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_userpod)


# ---------------------------------------------------------------------------------------------
# The page's example files and commands
# ---------------------------------------------------------------------------------------------
def doc_blocks(text=None):
    """[(info string, body)] of the fenced code blocks of docs/userpod.md."""
    blocks, info, body = [], None, []
    for line in (DOC.read_text() if text is None else text).splitlines():
        if info is None:
            if line.startswith("```"):
                info, body = line[3:].strip(), []
        elif line == "```":
            blocks.append((info, "".join(line + "\n" for line in body)))
            info = None
        else:
            body.append(line)
    assert info is None, "docs/userpod.md: a code block is not closed"
    return blocks


def doc_files():
    """{name: text} of the page's ```yaml file=NAME blocks."""
    files = {}
    for info, body in doc_blocks():
        match = re.fullmatch(r"yaml file=(\S+)", info)
        if match:
            files[match.group(1)] = body
    return files


def doc_commands():
    """[(command, [expected output lines])] of the page's ```console blocks, in order."""
    commands = []
    for info, body in doc_blocks():
        if info != "console":
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            else:
                assert commands, "docs/userpod.md: output before any command: %r" % line
                commands[-1][1].append(line)
    return commands


def test_the_page_has_only_checked_examples():
    """Every code block of the page is an example file or a console block that the test
    below runs, and the console blocks use every verb a tenant needs."""
    blocks = doc_blocks()
    assert blocks
    for info, _body in blocks:
        assert info == "console" or re.fullmatch(r"yaml file=\S+", info), info
    verbs = {command.split()[1] for command, _ in doc_commands() if command.startswith("userpod ")}
    assert {"parse", "render", "start", "status", "stop"} <= verbs
    assert {"pod-mycontainertest.yaml", "system-mycontainertest.yaml"} <= set(doc_files())
    assert doc_files()["system-mycontainertest.yaml"].count(PROVIDER_BASE) == 5


# ---------------------------------------------------------------------------------------------
# Building and running the archive
# ---------------------------------------------------------------------------------------------
def outside_checkout(path):
    path = Path(path).resolve()
    return path != ROOT and ROOT not in path.parents


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The archive, built by the command `make userpod` runs into a temporary directory,
    then copied to another one outside the checkout (a tenant's laptop)."""
    built = tmp_path_factory.mktemp("build") / "userpod.pyz"
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--output", str(built)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("build_userpod: wrote %s (" % built)
    laptop = tmp_path_factory.mktemp("laptop")
    assert outside_checkout(laptop)
    copy = laptop / "userpod.pyz"
    shutil.copy2(built, copy)
    return copy


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    """The page's example files in a directory outside the checkout, with the local copy of
    the hosting (its folders and system-local.yaml), as the page makes it."""
    work = tmp_path_factory.mktemp("work")
    assert outside_checkout(work)
    for name, text in doc_files().items():
        (work / name).write_text(text)
    base = work / "mycontainertest"
    (base / "data" / "app").mkdir(parents=True)
    (base / "tmp" / "run").mkdir(parents=True)
    (work / "system-local.yaml").write_text(
        (work / "system-mycontainertest.yaml").read_text().replace(PROVIDER_BASE, str(base))
    )
    (work / "syntax.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n")
    (work / "dir.yaml").mkdir()
    return work


def run_archive(archive, *args, cwd):
    return subprocess.run(
        [sys.executable, "-I", str(archive), *args],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def run_checkout(*args, cwd):
    return subprocess.run(
        [sys.executable, str(USERPOD), *args],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_archive_is_an_executable_python3_zipapp(archive, hosting):
    assert archive.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o755
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.testzip() is None
    # run by its #! line, with the python3 that has PyYAML first on PATH
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath])}
    result = subprocess.run(
        [str(archive), "parse", "pod-mycontainertest.yaml", "system-local.yaml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=hosting,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pod mycontainertest: valid\n")


@pytest.mark.parametrize(
    "args, status",
    [
        (["parse", "pod-mycontainertest.yaml", "system-local.yaml"], 0),
        (["render", "pod-mycontainertest.yaml", "system-local.yaml"], 0),
        (["parse", "--strict", "pod-mycontainertest.yaml", "system-local.yaml"], 1),
        (["parse", "broken.yaml", "system-local.yaml"], 1),
        (["render", "broken.yaml", "system-local.yaml"], 1),
        (
            ["parse", "pod-mycontainertest.yaml", "system-mycontainertest.yaml"],
            1,
        ),  # the server's folders are not here
        (["parse", "syntax.yaml", "system-local.yaml"], 1),
        (["parse", "missing.yaml", "system-local.yaml"], 1),
        (["render", "dir.yaml", "system-local.yaml"], 1),
        (["parse", "pod-mycontainertest.yaml", "broken.yaml"], 1),  # a pod is no policy
        (["parse", "pod-mycontainertest.yaml"], 2),
        (["frobnicate"], 2),
        (["--help"], 0),
        (["render", "--help"], 0),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_archive_prints_what_the_checkout_prints(archive, hosting, args, status):
    """Outside the checkout, isolated: the same stdout, stderr and exit status as
    bin/userpod, on the page's example files and on malformed ones."""
    expected = run_checkout(*args, cwd=hosting)
    assert expected.returncode == status, expected.stderr
    result = run_archive(archive, *args, cwd=hosting)
    assert (result.returncode, result.stdout, result.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
    assert "Traceback" not in result.stderr


def test_render_output_from_the_archive(archive, hosting, tmp_path):
    target = tmp_path / "rendered.yaml"
    result = run_archive(
        archive,
        "render",
        "--output",
        str(target),
        "pod-mycontainertest.yaml",
        "system-local.yaml",
        cwd=hosting,
    )
    assert result.returncode == 0, result.stderr
    expected = run_checkout("render", "pod-mycontainertest.yaml", "system-local.yaml", cwd=hosting)
    assert target.read_text() == expected.stdout


def test_archive_runs_its_own_engine(archive, hosting, tmp_path):
    """An engine where bin/userpod looks first (../plugins/module_utils, seen from the code
    in the archive) changes nothing: the archive runs the engine it carries."""
    placed = tmp_path / "userpod.pyz"
    shutil.copy2(archive, placed)
    decoy = tmp_path / "plugins" / "module_utils"
    (decoy / "pod_policy").mkdir(parents=True)
    (decoy / "pod_policy" / "__init__.py").write_text("raise ImportError('the decoy')\n")
    first = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "import userpod; print(userpod.ENGINE_DIRS[0])",
            str(placed),
        ],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        timeout=60,
    )
    assert os.path.normpath(first.stdout.strip()) == str(decoy)
    result = run_archive(
        placed, "parse", "pod-mycontainertest.yaml", "system-local.yaml", cwd=hosting
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# What the archive holds
# ---------------------------------------------------------------------------------------------
def _module_name(filename):
    name = filename[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def follow_imports(path):
    """(modules the archive holds, those reached from __main__, imports that are in
    neither the archive nor the standard library nor PyYAML), by reading its sources."""
    with zipfile.ZipFile(path) as bundle:
        sources = {
            _module_name(name): (name, bundle.read(name))
            for name in bundle.namelist()
            if name.endswith(".py")
        }
    first_party = {name.partition(".")[0] for name in sources}
    reached, unresolved, todo = set(), set(), ["__main__"]
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        if module not in sources:  # a package whose __init__.py is missing
            unresolved.add(module)
            continue
        reached.add(module)
        filename, source = sources[module]
        package = module if filename.endswith("__init__.py") else module.rpartition(".")[0]
        if "." in module:
            todo.append(module.rpartition(".")[0])  # a submodule needs its package
        for node in ast.walk(ast.parse(source, filename)):
            if isinstance(node, ast.Import):
                wanted = [(alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    target = ".".join(filter(None, (base, node.module)))
                else:
                    target = node.module
                wanted = [(target, [alias.name for alias in node.names])]
            else:
                continue
            for target, names in wanted:
                if target in sources:
                    todo.append(target)
                    # `from package import module` imports a module too
                    todo.extend(t for t in ("%s.%s" % (target, n) for n in names) if t in sources)
                elif (
                    getattr(node, "level", 0)  # relative: always one of the archive's own
                    or target.partition(".")[0] in first_party
                    or not _stdlib_or_yaml(target)
                ):
                    unresolved.add(target)
    return set(sources), reached, sorted(unresolved)


def _stdlib_or_yaml(name):
    top = name.partition(".")[0]
    return top == "yaml" or top in sys.stdlib_module_names


needs_stdlib_names = pytest.mark.skipif(
    not hasattr(sys, "stdlib_module_names"), reason="needs Python 3.10's sys.stdlib_module_names"
)


@needs_stdlib_names
def test_archive_holds_bin_userpod_and_exactly_the_modules_it_imports(archive):
    modules, reached, unresolved = follow_imports(archive)
    assert unresolved == []
    assert reached == modules  # nothing that is not imported
    assert {"__main__", "userpod", "pod_policy"} <= modules
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.read("userpod.py") == USERPOD.read_bytes()
        for name in bundle.namelist():
            if name.endswith(".py") and name not in ("__main__.py", "userpod.py"):
                assert bundle.read(name) == (ENGINE_ROOT / name).read_bytes(), name
    # the engine the checkout's userpod loads, module by module
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", LOADED_ENGINE, str(USERPOD), str(ENGINE_ROOT) + os.sep],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    engine = {str(Path(f).relative_to(ENGINE_ROOT)) for f in loaded.stdout.split()}
    with zipfile.ZipFile(archive) as bundle:
        assert engine and engine <= set(bundle.namelist())


# The files of the modules under argv[2] that bin/userpod (argv[1]) loads as its engine.
LOADED_ENGINE = """\
import runpy, sys
runpy.run_path(sys.argv[1], run_name="userpod")["load_engine"]()
for module in list(sys.modules.values()):
    if (getattr(module, "__file__", None) or "").startswith(sys.argv[2]):
        print(module.__file__)
"""


def _without(archive, left_out, target):
    """A copy of ``archive`` with the file ``left_out`` missing."""
    with zipfile.ZipFile(archive) as source, open(target, "wb") as out:
        out.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
            for item in source.infolist():
                if item.filename != left_out:
                    bundle.writestr(item, source.read(item))
    target.chmod(0o755)
    return target


@needs_stdlib_names
def test_every_module_left_out_is_caught(archive, tmp_path):
    with zipfile.ZipFile(archive) as bundle:
        names = [n for n in bundle.namelist() if n.endswith(".py") and n != "__main__.py"]
    assert len(names) > 2
    for name in names:
        _modules, _reached, unresolved = follow_imports(
            _without(archive, name, tmp_path / "userpod.pyz")
        )
        assert _module_name(name) in unresolved, name


def test_an_archive_without_an_engine_module_does_not_run(archive, hosting, tmp_path):
    broken = _without(archive, "pod_policy/dump.py", tmp_path / "userpod.pyz")
    result = run_archive(
        broken, "parse", "pod-mycontainertest.yaml", "system-local.yaml", cwd=hosting
    )
    assert result.returncode == 3
    assert result.stderr.startswith("userpod: cannot load the policy engine")


# ---------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------
def _tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_build_follows_imports_into_other_module_utils(tmp_path):
    engine = _tree(
        tmp_path / "module_utils",
        {
            "pkg/__init__.py": "from .a import x\nimport helper\nimport yaml\n",
            "pkg/a.py": "import os\nx = 1\n",
            "pkg/unused.py": "",
            "helper.py": "from pkg import a\n",
            "unused.py": "",
        },
    )
    script = _tree(tmp_path, {"script": "import sys\n\ndef main():\n    import pkg\n"}) / "script"
    assert list(build_userpod.engine_modules(script, engine)) == [
        "helper.py",
        "pkg/__init__.py",
        "pkg/a.py",
    ]


@needs_stdlib_names
def test_build_refuses_an_import_a_laptop_lacks(tmp_path):
    engine = _tree(tmp_path / "module_utils", {"pkg/__init__.py": "import ansible.module_utils\n"})
    script = _tree(tmp_path, {"script": "import pkg\n"}) / "script"
    with pytest.raises(build_userpod.BuildError, match=r"imports ansible\.module_utils"):
        build_userpod.engine_modules(script, engine)


def test_make_userpod(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    target = tmp_path / "userpod.pyz"
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "userpod", "USERPOD_PYZ=%s" % target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_the_minimum_python_is_the_one_ruff_checks_for():
    """MIN_PYTHON (the archive refuses older ones) is pyproject.toml's ruff target."""
    target = re.search(r'^target-version = "py3(\d+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert build_userpod.MIN_PYTHON == (3, int(target.group(1)))


# ---------------------------------------------------------------------------------------------
# docs/userpod.md, run
# ---------------------------------------------------------------------------------------------
def _matches(expected, actual):
    if expected and expected[-1] == "...":
        return actual[: len(expected) - 1] == expected[:-1]
    return actual == expected


def test_the_page_runs_as_written(archive, tmp_path):
    """Each command of docs/userpod.md in order, by bash, as a tenant whose home is
    DOC_HOME: the page's files and userpod.pyz in the working directory, a podman and
    nsenter stand-in for `userpod start` (tests/unit/fake_podman.py)."""
    home = tmp_path / "alice"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    for name, text in doc_files().items():
        (work / name).write_text(text)
    shutil.copy2(archive, work / "userpod.pyz")
    fakebin = tmp_path / "fakebin"
    env = fake_podman.install(fakebin, tmp_path / "podman-state")
    env["HOME"] = str(home)
    # ~/bin first (the page installs userpod there), then a python3 that has PyYAML
    env["PATH"] = os.pathsep.join(
        [str(home / "bin"), str(fakebin), str(Path(sys.executable).parent), os.defpath]
    )
    commands = doc_commands()
    status = 0
    try:
        for index, (command, expected) in enumerate(commands):
            result = subprocess.run(
                ["bash", "-c", "(exit %d); %s" % (status, command)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=work,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )
            output = result.stdout.replace(str(home), DOC_HOME)
            output = re.sub(r"forwarder pid \d+", "forwarder pid " + DOC_PID, output)
            assert _matches(expected, output.splitlines()), (command, output)
            followed_by_status = index + 1 < len(commands) and commands[index + 1][0] == "echo $?"
            if command != "echo $?" and not followed_by_status:
                assert result.returncode == 0, (command, output)
            status = result.returncode
    finally:
        fake_podman.kill_forwarders(home.glob("mycontainertest/pod.socket-*.pid"))
