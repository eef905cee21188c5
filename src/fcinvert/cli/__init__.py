"""The command line: thin commands that parse, call one function and print.

Each command group lives in its own module with a ``register(app)`` function. Every
FcinvertError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from fcinvert.errors import FcinvertError

app = typer.Typer(
    name="fcinvert",
    help="Interatomic force constants from single-crystal inelastic neutron scattering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    """Add every command group to ``app``, once (``main`` may run many times in a process)."""
    if app.registered_commands or app.registered_groups:
        return
    from fcinvert.cli import (
        evaluate,
        label,
        material,
        measure,
        models,
        simulate,
        single_scan,
        stage1,
        watch,
    )

    for module in (material, simulate, label, stage1, models, measure, evaluate, single_scan):
        module.register(app)
    watch.register(app)


def main() -> None:
    """Entry point of the ``fcinvert`` command."""
    _register_all()
    try:
        app(standalone_mode=False)
    except FcinvertError as error:
        message = " ".join(str(error).splitlines())  # one line, whatever a name holds
        print(f"fcinvert: error: {message}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, SystemExit) as stop:
        raise stop
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(2)
        if isinstance(error, click.exceptions.Abort):
            sys.exit(130)
        raise
