"""The command line starts without the heavy libraries: they load inside the command that uses
them, and ``--help`` lists every command without importing any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fcinvert.cli import COMMANDS, load_module_commands

HEAVY = ("torch", "matplotlib", "numba", "lightning", "hiphive")


def modules_after(code: str) -> set[str]:
    """Top-level package names imported by a fresh interpreter after running ``code``."""
    names = "sorted({m.split('.')[0] for m in sys.modules})"
    script = f"{code}\nimport json, sys\nprint(json.dumps({names}))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_no_heavy_library():
    loaded = modules_after("import fcinvert.cli")
    assert "typer" in loaded  # the probe sees what the import did
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_defining_every_command_imports_no_heavy_library():
    """What ``fcinvert <command> --help`` loads: each command's module and its options."""
    loaded = modules_after(
        "import typer\nfrom fcinvert.cli import COMMANDS, app\n"
        "group = typer.main.get_command(app)\n"
        "assert all(group.commands[name].name == name for name in COMMANDS)"
    )
    assert "fcinvert" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_line_is_the_commands_own(name):
    """``--help`` shows COMMANDS' line: it must be the first paragraph of the command's help."""
    module, line = COMMANDS[name]
    command = load_module_commands(module)[name]
    first_paragraph = " ".join(command.help.split("\n\n")[0].split())
    assert line == first_paragraph


def test_help_lists_every_command_and_runs_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fcinvert", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert listed[1:] == list(COMMANDS)  # after the --help option
    shown = subprocess.run(
        [sys.executable, "-m", "fcinvert", "material", "show", "nb", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "nb"


def test_unknown_command_is_a_one_line_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "fcinvert", "materail"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No such command 'materail'" in result.stderr and "'material'" in result.stderr
