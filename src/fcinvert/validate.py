"""Checks at the edge, in one place: what a user hands over (options, file contents, output
locations) is refused here as one ``FcinvertError`` line naming the option or file, before any
work starts. The physics and the models behind the CLI may then assume sane input.

Commands call these at their top: every output location is checked writable first, so a run
never computes for minutes to fail at the end, and a secondary output (a figure, phonopy files)
is known writable before the main one is written. Readers of user files are wrapped in
``reads_file``, so a damaged file is one line too, whatever the parser underneath raises.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from fcinvert.errors import FcinvertError

#: figure formats the plotting code writes (matplotlib's, by suffix)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
#: the largest finite magnitude accepted in an input array: far above any count rate or
#: intensity, far below where squares and sums overflow float64 (1e308 is refused)
MAX_MAGNITUDE = 1e100


def _option(name: str) -> str:
    return name if name.startswith("--") or " " in name else f"--{name}"


def finite(value: float, option: str, *, minimum: float | None = None, above: float | None = None):
    """``value`` if it is a finite number (≥ ``minimum``, > ``above`` when given)."""
    if value is None or not math.isfinite(value):
        raise FcinvertError(f"{_option(option)}: must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise FcinvertError(f"{_option(option)}: must be at least {minimum:g}, got {value:g}")
    if above is not None and value <= above:
        raise FcinvertError(f"{_option(option)}: must be greater than {above:g}, got {value:g}")
    return value


def temperature(value: float | None, option: str = "--temperature") -> float | None:
    """A temperature in K: None (the default applies) or finite and ≥ 0."""
    if value is None:
        return None
    return finite(value, option, minimum=0.0)


def integer(value: int | None, option: str, *, minimum: int, maximum: int | None = None):
    """``value`` (None passes) within [minimum, maximum]."""
    if value is None:
        return None
    if value < minimum:
        raise FcinvertError(f"{_option(option)}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise FcinvertError(f"{_option(option)}: must be at most {maximum:,}, got {value:,}")
    return value


def safe_name(name: str, option: str = "--name") -> str:
    """A name that is one safe path component: letters, digits, '-', '_', '.', not '.'/'..'."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    if (
        not name
        or name in (".", "..")
        or name.startswith(("-", "."))
        or not set(name) <= allowed
        or len(name) > 100
    ):
        raise FcinvertError(
            f"{_option(option)}: {name!r} is not a valid name (letters, digits, '-', '_', '.'; "
            "one path component, not starting with '.' or '-')"
        )
    return name


def _first_existing(path: Path) -> Path:
    current = path
    while not current.exists():
        if current.parent == current:
            return current
        current = current.parent
    return current


def _check_writable_location(path: Path, option: str) -> None:
    """Every existing ancestor of ``path`` is a folder and the nearest one is writable."""
    path = Path(os.path.abspath(path))
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise FcinvertError(f"{_option(option)} {path}: {parent} is a file, not a folder")
    nearest = _first_existing(path.parent)
    if not nearest.is_dir():
        raise FcinvertError(f"{_option(option)} {path}: {nearest} is a file, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise FcinvertError(f"{_option(option)} {path}: {nearest} is not writable")


def output_file(path: Path | None, option: str = "--out", suffixes: Iterable[str] = ()) -> None:
    """``path`` (None passes) can be written as a file: not a folder, its parent a writable
    folder (or creatable in one), its suffix one of ``suffixes`` when given."""
    if path is None:
        return
    path = Path(path)
    if str(path) in ("", ".") or path.name in ("", ".", ".."):
        raise FcinvertError(f"{_option(option)}: '{path}' is not a file name")
    suffixes = tuple(suffixes)
    if suffixes and path.suffix.lower() not in suffixes:
        raise FcinvertError(
            f"{_option(option)} {path}: unsupported suffix '{path.suffix}' "
            f"(use {', '.join(suffixes)})"
        )
    if path.is_dir():
        raise FcinvertError(f"{_option(option)} {path}: is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise FcinvertError(f"{_option(option)} {path}: exists and is not writable")
    _check_writable_location(path, option)


def figure_file(path: Path | None, option: str = "--plot") -> None:
    """An output figure: a writable file with a suffix matplotlib writes here."""
    output_file(path, option, FIGURE_SUFFIXES)


def output_folder(path: Path | None, option: str = "--out") -> None:
    """``path`` (None passes) is a writable folder or can be created as one."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FcinvertError(f"{_option(option)} {path}: is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise FcinvertError(f"{_option(option)} {path}: folder is not writable")
        return
    _check_writable_location(path, option)


def input_file(path: Path | None, option: str) -> None:
    """``path`` (None passes) is an existing, readable file (not a folder)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise FcinvertError(f"{_option(option)} {path}: is a folder, not a file")
    if not path.is_file():
        raise FcinvertError(f"{_option(option)} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise FcinvertError(f"{_option(option)} {path}: not readable")


def distinct(paths: dict[str, Path | None]) -> None:
    """The outputs of one command are different files (``{option: path}``; None skipped)."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        resolved = Path(os.path.abspath(path))
        if resolved in seen:
            raise FcinvertError(
                f"{_option(option)} {path}: the same file as {_option(seen[resolved])}"
            )
        seen[resolved] = option


def array_values(values: np.ndarray, where: str, what: str, *, nonnegative: bool = False) -> None:
    """Refuse ±inf and overflow-scale magnitudes (NaN = unmeasured passes) in an input array,
    and negative values when ``nonnegative``."""
    finite_values = values[np.isfinite(values)]
    if np.any(np.isinf(values)):
        raise FcinvertError(f"{where}: {what} holds ±inf; mark unmeasured pixels NaN")
    if finite_values.size and float(np.abs(finite_values).max()) > MAX_MAGNITUDE:
        raise FcinvertError(
            f"{where}: {what} reaches {float(np.abs(finite_values).max()):.3g}, beyond "
            f"{MAX_MAGNITUDE:g}: overflow-scale values, rescale the data"
        )
    if nonnegative and finite_values.size and float(finite_values.min()) < 0:
        raise FcinvertError(
            f"{where}: {what} holds negative values (min {finite_values.min():.3g})"
        )


def spectrum_content(
    where: str,
    intensity: np.ndarray,
    qpoints: np.ndarray,
    error: np.ndarray | None,
    temperature_K: float,
    temperature_given: bool,
) -> None:
    """Physical sanity of a spectrum file's numbers (shapes are checked by the reader).

    intensity (nq, nE); qpoints (nq, 3) reduced; error (nq, nE) or None; temperature K.
    Duplicated q-points are refused unless their rows agree (where both are measured); a map
    whose q-points are all the same one has no dispersion to fit.
    """
    array_values(intensity, where, "'intensity'")
    if error is not None:
        array_values(error, where, "'error' (one σ)", nonnegative=True)
    if temperature_given and (not math.isfinite(temperature_K) or temperature_K < 0):
        raise FcinvertError(f"{where}: temperature_K must be finite and ≥ 0, got {temperature_K}")
    if len(qpoints) > 1:
        rounded = np.round(qpoints, 6)
        unique, inverse = np.unique(rounded, axis=0, return_inverse=True)
        inverse = np.ravel(inverse)
        if len(unique) == 1:
            raise FcinvertError(f"{where}: every q-point is the same ({unique[0].tolist()})")
        if len(unique) < len(qpoints):
            _duplicates_agree(where, intensity, error, unique, inverse)


def _duplicates_agree(where, intensity, error, unique, inverse) -> None:
    """Rows of a repeated q-point must agree where both are measured: within 1e-3 of the map's
    largest intensity, plus 5 standard deviations when error bars are given."""
    measured = intensity[np.isfinite(intensity)]
    scale = float(np.abs(measured).max()) if measured.size else 1.0
    for group in np.flatnonzero(np.bincount(inverse) > 1):
        rows = np.flatnonzero(inverse == group)
        first = intensity[rows[0]]
        for other in rows[1:]:
            difference = np.abs(intensity[other] - first)
            allowed = 1e-3 * scale
            if error is not None:
                allowed = allowed + 5 * np.hypot(error[rows[0]], error[other])
            if np.any(np.nan_to_num(difference - allowed, nan=0.0) > 0):
                raise FcinvertError(
                    f"{where}: q-point {unique[group].tolist()} appears {len(rows)} times "
                    "with conflicting intensities; merge or drop the duplicates"
                )


def choice(value: str, option: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise FcinvertError(f"{_option(option)}: '{value}' is not one of {', '.join(allowed)}")
    return value


def positive_integers(text: str, option: str) -> tuple[int, ...]:
    """ "16,32,64" → (16, 32, 64): a non-empty list of integers ≥ 1."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise FcinvertError(
            f"{_option(option)}: '{text}' is not a comma-separated list of positive integers"
        )
    return values


#: what a damaged file makes h5py, numpy, json or a parser raise
DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, EOFError)


def reads_file(what: str) -> Callable:
    """Decorate a reader ``f(path, ...)``: any exception a damaged file raises inside it (h5py's
    KeyError/RuntimeError/OSError on a corrupt header, a parser's ValueError, …) becomes one
    FcinvertError line naming ``path``; FcinvertErrors pass unchanged."""

    def decorate(reader: Callable) -> Callable:
        @functools.wraps(reader)
        def checked(path, *args, **kwargs):
            try:
                return reader(path, *args, **kwargs)
            except FcinvertError:
                raise
            except DAMAGE as error:
                raise FcinvertError(
                    f"{path}: damaged or unreadable {what} ({why(error)})"
                ) from None

        return checked

    return decorate


def why(error: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), at most 120
    characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:120]


def settings_error(error: Exception, options: dict[str, str]) -> FcinvertError:
    """One line for a pydantic ValidationError of settings built from options: the first
    problem, named by its option (``options``: field → option; otherwise ``--field-name``)."""
    problems = getattr(error, "errors", None)
    if not callable(problems) or not problems():
        return FcinvertError(f"invalid settings: {why(error)}")
    first = problems()[0]
    field = str(first["loc"][-1]) if first["loc"] else "settings"
    option = options.get(field, "--" + field.replace("_", "-"))
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f", got {value!r}"
    return FcinvertError(f"{option}: {first['msg'].lower()}{shown}")
