"""The package's layers import one way: physics ← labels ← data ← models ← inversion ←
analysis ← report ← cli. Every ``import`` statement of every module (at any depth, deferred ones
included) is read from the source and must name its own layer, a lower one, or a shared helper;
the helpers (errors, iohelpers, validate) import no layer at all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fcinvert

LAYERS = ("physics", "labels", "data", "models", "inversion", "analysis", "report", "cli")
#: modules at the package root: the shared helpers (rank -1) and those that belong to a layer
ROOT_MODULES = {
    "__init__": -1,
    "errors": -1,
    "iohelpers": -1,
    "validate": -1,
    "simulate": LAYERS.index("data"),
    "build": LAYERS.index("analysis"),  # the build workflow: labels → data → models → scores
    "__main__": LAYERS.index("cli"),
}
PACKAGE = Path(fcinvert.__file__).parent


def rank(module: str) -> int:
    """The layer rank of ``fcinvert.<...>`` (a module or a package)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    if parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return ROOT_MODULES[parts[1]]


def module_name(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(file: Path) -> list[tuple[int, str]]:
    """(line, module) of every fcinvert module that ``file`` imports."""
    found = []
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "fcinvert":  # from fcinvert import validate (a module)
                found += [
                    (node.lineno, f"fcinvert.{alias.name}")
                    for alias in node.names
                    if (PACKAGE / f"{alias.name}.py").is_file() or (PACKAGE / alias.name).is_dir()
                ]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{file}:{node.lineno}: relative import")
    return [(line, name) for line, name in found if name.split(".")[0] == "fcinvert"]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert len(SOURCES) > 50
    for file in SOURCES:
        rank(module_name(file))  # KeyError: a new root module without a layer


@pytest.mark.parametrize("file", SOURCES, ids=lambda f: str(f.relative_to(PACKAGE)))
def test_imports_go_downward(file):
    own = rank(module_name(file))
    upward = [
        f"{file.relative_to(PACKAGE)}:{line} imports {name}"
        for line, name in imported(file)
        if name != "fcinvert" and rank(name) > own
    ]
    assert not upward, "; ".join(upward)


def test_physics_and_helpers_import_no_other_layer():
    for file in SOURCES:
        own = rank(module_name(file))
        if own > 0:
            continue
        names = {name for _, name in imported(file) if name != "fcinvert"}
        assert all(rank(name) in (-1, own) for name in names), (file, names)


def test_the_walk_sees_an_upward_import(tmp_path):
    """The check itself: a module of physics importing the cli is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from fcinvert.cli import main\n    from fcinvert import validate\n"
    )
    names = [name for _, name in imported(bad)]
    assert names == ["fcinvert.cli", "fcinvert", "fcinvert.validate"]
    assert rank("fcinvert.cli") > rank("fcinvert.physics.material") > rank("fcinvert.validate")
