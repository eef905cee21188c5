"""The command line: thin commands that parse, call one function and print.

Each command group lives in its own module with a ``register(app)`` function. The top-level
group imports a module only when one of its commands runs (``fcinvert --help`` lists
``COMMANDS`` without importing any), so a command pays only for the libraries it uses.
Every FcinvertError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping

import typer
from typer import _click as click  # typer's own copy of click: its classes and exceptions
from typer.core import TyperCommand, TyperGroup

from fcinvert.errors import FcinvertError

#: command name → (module of ``fcinvert.cli`` that registers it, the help line ``--help`` shows:
#: the first paragraph of the command's docstring, which tests/test_cli_startup.py checks)
COMMANDS: dict[str, tuple[str, str]] = {
    "material": ("material", "Materials: show one, or make one from a structure file."),
    "simulate": (
        "simulate",
        "Simulate I(q, E) on the material's path; parameters not given keep their reference.",
    ),
    "label": (
        "label",
        "Label a material: force constants from each source → θ, cached in "
        "<material>/labels/, summarised in ensemble.json; reference.json = median over the "
        "stable members.",
    ),
    "sensitivity": (
        "stage1",
        "Rank the FC parameters by how much of the dispersion's variance each one drives.",
    ),
    "dataset": (
        "stage1",
        "Draw stable FC sets from the training domain and write them with their spectra.",
    ),
    "build": (
        "build",
        "Build a material with a trained inverter from a structure file (and a measurement).",
    ),
    "train": ("models", "Train an inverter on a Stage I dataset and write a model bundle."),
    "invert": ("models", "Infer force constants, with intervals, from a spectrum."),
    "fold": ("measure", "Fold a measured S(Q, E) onto the material's path and energy grid."),
    "measure": (
        "measure",
        "Simulate ToF scans (ARCS-like) of a material: one spectrum file per orientation, "
        "all.h5 for all of them together, scans.json listing them.",
    ),
    "evaluate": (
        "evaluate",
        "Reconstructions, accuracy, the noise grid and the latent space of trained models.",
    ),
    "watch": (
        "watch",
        "Fold each new orientation file, re-invert, keep OUT/index.html and OUT/history.json; "
        "stop when the target is reached (or after one pass with --once).",
    ),
    "plan": (
        "watch",
        "Rank candidate orientations by the information they would add to what is measured.",
    ),
    "single-scan": (
        "single_scan",
        "Invert each scan alone and all of them together; MSE versus orientation, best, "
        "median and worst scans, FC values of every scan.",
    ),
}


class _LazyCommands(MutableMapping):
    """``COMMANDS`` as click sees them: a command's module is imported on first access."""

    def __init__(self) -> None:
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded.update(load_module_commands(COMMANDS[name][0]))
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class LazyGroup(TyperGroup):
    """The ``fcinvert`` group: lists ``COMMANDS`` and loads only the command that runs."""

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The usual help, with each command's line taken from ``COMMANDS`` (no imports)."""
        listing = TyperGroup(
            name=self.name,
            help=self.help,
            params=self.params,
            rich_markup_mode=self.rich_markup_mode,
            commands=[TyperCommand(name, help=text) for name, (_, text) in COMMANDS.items()],
        )
        listing.format_help(ctx, formatter)


def load_module_commands(module_name: str) -> dict[str, click.Command]:
    """The click commands that ``fcinvert.cli.<module_name>.register`` adds, by name."""
    module = importlib.import_module(f"fcinvert.cli.{module_name}")
    holder = typer.Typer()
    module.register(holder)
    return dict(typer.main.get_group(holder).commands)


app = typer.Typer(
    name="fcinvert",
    help="Interatomic force constants from single-crystal inelastic neutron scattering.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """(makes ``app`` a group; its help is the ``help`` above)"""


def main() -> None:
    """Entry point of the ``fcinvert`` command."""
    try:
        app(standalone_mode=False)
    except FcinvertError as error:
        message = " ".join(str(error).splitlines())  # one line, whatever a name holds
        print(f"fcinvert: error: {message}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, SystemExit) as stop:
        raise stop
    except Exception as error:  # click's usage errors
        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(2)
        if isinstance(error, typer.Abort):
            sys.exit(130)
        raise
