"""How long steps report progress: a callback ``progress(stage, done, total)``, ``stage`` naming
the step (one bar per name in the CLI), ``done`` of ``total`` units of it finished. The work
calls it; the CLI draws it (``fcinvert.cli.progress``)."""

from __future__ import annotations

from collections.abc import Callable

StageCallback = Callable[[str, int, int], None]
