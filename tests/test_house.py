"""The shape of the package, pinned: thin commands that never import each other, no import
cycle between library modules, the stages findable by file name, Python 3.11 (tomllib)."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fathom"
COMMANDS = PACKAGE / "commands"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """fathom modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fathom"):
            found.add(node.module)
            for alias in node.names:  # `from fathom import osd` imports the module fathom.osd
                if (
                    PACKAGE
                    / node.module.replace("fathom", "", 1).strip(".").replace(".", "/")
                    / f"{alias.name}.py"
                ).exists():
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fathom")}
    return found


def _command_files():
    return sorted(
        p for p in COMMANDS.rglob("*.py") if p.name != "__init__.py" or p.parent != COMMANDS
    )


@pytest.mark.parametrize("path", _command_files(), ids=lambda p: str(p.relative_to(COMMANDS)))
def test_commands_are_thin_and_never_import_another_command(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= 85, f"{path.name}: {len(lines)} lines; move the logic into the library"
    own_group = _module_name(path).rsplit(".", 1)[0] if path.parent != COMMANDS else None
    for module in _imports(path):
        if module.startswith("fathom.commands"):
            assert own_group and module.startswith(own_group), f"{path.name} imports {module}"


def test_no_import_cycle_between_library_modules():
    """Top-level and function-level imports alike: a cycle hidden behind a function-level
    import is still a cycle."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        graph[name] = {m for m in _imports(path) if m != name and not m.startswith(name + ".")}
    # importing fathom.x.y runs fathom.x's __init__ too, but that is not an edge of our code
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_each_stage_lives_in_a_module_named_after_its_subcommand():
    from fathom.cli import COMMANDS as NAMES

    homes = {
        "images": "data/images.py",
        "folds": "data/folds.py",
        "cache": "data/cache.py",
        "train": "engine/train.py",
        "predict": "engine/predict.py",
        "weights": "engine/pretrained.py",
        "synth": "synth/__init__.py",
        "kaggle": "kaggle/__init__.py",
        "kernel": "kaggle/kernels.py",
        "compare": "report.py",
        "validate": "submission.py",
    }
    for name in NAMES:
        assert (PACKAGE / homes.get(name, f"{name}.py")).is_file(), name


def test_only_open_dataset_tells_the_two_layouts_apart():
    """The Kaggle layout and a folder dataset part in fathom/data/__init__.py only."""
    marker = re.compile(r"is_folder_dataset|KAGGLE_MARKERS")
    users = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if marker.search(p.read_text())
    ]
    assert users == ["data/__init__.py"]


def test_python_version_matches_the_code():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"  # fathom/config.py uses tomllib
    assert project["tool"]["ruff"]["target-version"] == "py311"
