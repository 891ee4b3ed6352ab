"""The package layout: imports go one way, and what a user installs holds no test scaffolding."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# installed name -> the repository folder it is built from (pyproject.toml's package-dir)
FOLDERS = {"rarft_plugin": "rarft_plugin", "rarft_eval": "eval", "rarft_prep": "data_prep"}
PIPELINES = ("rarft_eval", "rarft_prep")
PACKAGES = tuple(FOLDERS)  # what the wheel installs


def imported_modules(source: str, *, package: str | None = None, from_names: bool = False) -> list[str]:
    """Every module a source file imports: import statements, and `importlib.import_module` / `__import__` of a
    literal name; with `from_names`, `from PACKAGE import NAME` also gives PACKAGE.NAME (NAME may be a module).
    Relative imports are resolved against `package` (the importing module's package), and skipped without one."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.level == 0 or package):
            parent = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (parent, node.module) if part)
            names += [module] if node.module else []
            names += [f"{module}.{alias.name}" for alias in node.names] if from_names or not node.module else []
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(str(node.args[0].value))
    return names


def pipeline_imports(source: str) -> list[str]:
    """The pipelines a source imports, by their installed names or by their folders' names."""
    pipelines = {*PIPELINES, *(FOLDERS[name] for name in PIPELINES)}
    return [name for name in imported_modules(source) if name.split(".")[0] in pipelines]


@pytest.mark.parametrize(
    "source, found",
    [
        ("import rarft_eval.cli", ["rarft_eval.cli"]),
        ("from rarft_prep.cli import main", ["rarft_prep.cli"]),
        ("import eval.cli", ["eval.cli"]),  # the folder's name
        ("def f():\n    from rarft_eval import predictions", ["rarft_eval"]),
        ("import importlib\nimportlib.import_module('rarft_prep.splits')", ["rarft_prep.splits"]),
        ("from rarft_plugin.video import probe\nimport evaluate\nfrom . import eval", []),
        ("run(['python', '-m', 'rarft_eval.cli'])", []),  # a process of its own is not an import
    ],
)
def test_pipeline_imports_are_found(source, found):
    assert pipeline_imports(source) == found


def test_the_library_never_imports_the_pipelines():
    offenders = {
        str(path.relative_to(REPO)): pipeline_imports(path.read_text(encoding="utf-8"))
        for path in sorted((REPO / "rarft_plugin").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_wheel_holds_the_three_packages_and_no_test_stand_ins(tmp_path):
    """Built from a copy of the sources (a build writes into its source tree), offline, without isolation."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in FOLDERS.values():
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("rarft-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {name: archive.read(name).decode() for name in names if name.endswith(".py")}
    top = {name.split("/")[0] for name in names if not name.startswith("rarft-")}
    assert top == set(PACKAGES)  # no `eval` or `data_prep` in site-packages
    assert "rarft_plugin/stand_ins.py" in names and "rarft_plugin/samples/predictions.jsonl" in names
    assert not [name for name in names if "testing" in name or "/support/" in name or name.startswith("tests/")]
    # the import stand-ins (fake vllm / flash_attn registered in sys.modules) live in tests/support only
    assert [
        name for name, text in sources.items() if "install_import_stand_ins" in text or "__rarft_stand_in__" in text
    ] == []


def module_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports (anywhere in it: at the top, in a function, or for type
    checking only); `from PACKAGE import MODULE` counts as importing that module."""
    modules = {
        ".".join((package, *path.relative_to(REPO / FOLDERS[package]).with_suffix("").parts)).removesuffix(
            ".__init__"
        ): path
        for package in packages
        for path in sorted((REPO / FOLDERS[package]).rglob("*.py"))
    }

    def imports(name: str, path: Path) -> set[str]:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = imported_modules(path.read_text(encoding="utf-8"), package=package, from_names=True)
        return {other for other in found if other in modules and other != name}

    return {name: imports(name, path) for name, path in modules.items()}


@pytest.mark.parametrize(
    "source, package, found",
    [
        ("from .metrics import Metrics", "rarft_eval", ["rarft_eval.metrics", "rarft_eval.metrics.Metrics"]),
        ("from . import audit", "rarft_eval", ["rarft_eval.audit"]),
        ("from ..models import qwen_vl", "rarft_plugin.launch", ["rarft_plugin.models", "rarft_plugin.models.qwen_vl"]),
        ("from .metrics import Metrics", None, []),
    ],
)
def test_relative_imports_resolve_against_the_package(source, package, found):
    assert imported_modules(source, package=package, from_names=True) == found


def test_nothing_imports_a_pipeline_by_its_folder_name():
    """eval/ and data_prep/ install as rarft_eval and rarft_prep: an import by the folder's name works only from a
    checkout's root, and inside a pipeline its own modules are imported relatively (it runs under either name)."""
    folders = {FOLDERS[name] for name in PIPELINES}
    offenders = {
        str(path.relative_to(REPO)): names
        for top in ("rarft_plugin", "eval", "data_prep", "tests", "scripts", "bench")
        for path in sorted((REPO / top).rglob("*.py"))
        if (names := [n for n in imported_modules(path.read_text(encoding="utf-8")) if n.split(".")[0] in folders])
    }
    assert offenders == {}


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One chain of imports that comes back to where it started, or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for other in sorted(graph[module]):
            found = visit(other, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    return next((found for module in sorted(graph) if (found := visit(module, []))), None)


@pytest.mark.parametrize(
    "graph, circle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_import_circles_are_found(graph, circle):
    assert import_circle(graph) == circle


def test_nothing_imports_in_a_circle():
    """Every module of the library and the pipelines imports one way, type-only imports included: a command module
    and the helpers it shares with another go in separate modules (e.g. eval.arguments for infer and evaluate),
    and a type two modules need lives below both (rarft_plugin.clips for the families and video,
    rarft_plugin.parsing.ChatMarkers for the families and the readers)."""
    assert import_circle(module_graph(PACKAGES)) is None


def test_the_test_command_runs_every_doctest():
    """The suite's configuration collects the doctests of every installed package (a broken example fails CI)."""
    config = dict(
        line.split(" = ", 1)
        for line in (REPO / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1].splitlines()
        if " = " in line
    )  # the two one-line settings (tomllib is Python 3.11+)
    assert "--doctest-modules" in config["addopts"].strip('"').split()
    assert set(FOLDERS.values()) <= {path.strip(' "') for path in config["testpaths"].strip("[]").split(",")}


@pytest.mark.parametrize("package", PIPELINES)
def test_each_command_line_only_dispatches(package):
    """`cli.py` is a table of subcommands (`COMMANDS`); each command module owns its arguments, files and run, and
    the dispatcher imports only the chosen one: `cli.py` imports none of them."""
    import importlib.util

    cli = importlib.import_module(f"{package}.cli")
    commands = {importlib.util.resolve_name(module, package) for module, _ in cli.COMMANDS.values()}
    assert module_graph(PIPELINES)[f"{package}.cli"] & commands == set()
    for name in sorted(commands):
        module = importlib.import_module(name)
        assert all(callable(getattr(module, f, None)) for f in ("add_arguments", "command_files", "run")), name
