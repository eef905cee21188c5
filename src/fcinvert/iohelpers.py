"""File input and output: atomic writes (a reader never sees a half-written file, a failed write
loses nothing), and JSON, pydantic and HDF5 reads whose every failure is one line naming the
file."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from fcinvert.errors import FcinvertError

if TYPE_CHECKING:
    import h5py
    from pydantic import BaseModel

    Model = TypeVar("Model", bound=BaseModel)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


#: a temporary without a writer's process id (older versions) is stale after this long
STALE_AFTER_S = 60.0


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the ``.<name>.<pid>-XXXX.tmp`` files a killed write to ``target`` left beside it:
    those whose writing process is gone (or, without a process id, untouched for
    ``STALE_AFTER_S``). A write in progress by a live process is left alone. Returns the
    removed paths."""
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    try:
        candidates = [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for candidate in candidates:
        middle = candidate.name[len(prefix) :]
        if not middle.endswith(".tmp") or "." in middle[: -len(".tmp")]:
            continue  # not ours, or another target's (".s.h5.gz.…" beside "s.h5")
        if not candidate.is_file():
            continue
        writer = middle[: -len(".tmp")].split("-", 1)[0]
        try:
            if writer.isdigit() and "-" in middle:
                stale = int(writer) != os.getpid() and not _alive(int(writer))
            else:
                stale = time.time() - candidate.stat().st_mtime > STALE_AFTER_S
            if stale:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid < 2**31  # another user's process, or an impossible id
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (64 hex digits) of a file's bytes, read in 1 MiB chunks (datasets run to GB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def relative_path(path: str | Path, folder: str | Path) -> str:
    """``path`` relative to ``folder`` (a report names its inputs so that the report can move
    with them); a name that is no existing path is returned as it is."""
    if not Path(path).exists():
        return str(path)
    return os.path.relpath(Path(path).resolve(), Path(folder).resolve())


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The content of the JSON file ``path``; a missing, unreadable or malformed file is one
    FcinvertError line naming it (``what``: what the file should be)."""
    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_text())
    except RecursionError:
        raise FcinvertError(f"{path}: unreadable (JSON nested too deeply)") from None
    except (OSError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FcinvertError(f"{path}: not a readable {what} ({first})") from None


def validated(model: type[Model], content: Any, path: str | Path) -> Model:
    """``content`` checked by the pydantic ``model``; the first problem is one FcinvertError
    line naming the file and the field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(content)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FcinvertError(f"{path}: {where}: {first['msg']}") from None


def check_format(content: Any, name: str, version: int, source: str, what: str) -> None:
    """One FcinvertError line unless ``content`` is a JSON object of format ``name`` and
    ``version`` (``what``: what such a file holds, for the message)."""
    if not isinstance(content, dict) or content.get("format") != name:
        raise FcinvertError(f"{source}: not fcinvert {what} (format)")
    if content.get("version") != version:
        raise FcinvertError(
            f"{source}: {what} version {content.get('version')} (this fcinvert reads {version})"
        )


Record = TypeVar("Record", bound="JsonRecord")


class JsonRecord:
    """A dataclass written as one JSON object that starts with its ``format``, ``version`` and
    the ``fcinvert_version`` field, then every other field in order; fields whose default is
    None are left out while they are None (parts a report fills later). Subclasses set FORMAT,
    VERSION and WHAT (what the file holds, for messages)."""

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int]
    WHAT: ClassVar[str]
    fcinvert_version: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (nested dataclasses as objects)."""
        content: dict[str, Any] = {"format": self.FORMAT, "version": self.VERSION}
        content["fcinvert_version"] = self.fcinvert_version
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if item.name == "fcinvert_version" or (value is None and item.default is None):
                continue
            content[item.name] = _plain(value)
        return content

    @classmethod
    def from_dict(cls: type[Record], content: Any, source: str = "record") -> Record:
        """Read back ``to_dict``'s object, checked field by field; another format or version,
        or a missing or mistyped field, is one FcinvertError line naming ``source``."""
        from pydantic import TypeAdapter, ValidationError

        check_format(content, cls.FORMAT, cls.VERSION, source, cls.WHAT)
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {key: value for key, value in content.items() if key in names}
        try:
            return TypeAdapter(cls).validate_python(values)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = f"{where}: {first['msg']}"
            raise FcinvertError(f"{source}: not valid {cls.WHAT} ({reason})") from None

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of ``to_dict``'s object."""
        from pydantic import TypeAdapter

        schema = TypeAdapter(cls).json_schema(mode="serialization")
        header = {"format": {"const": cls.FORMAT}, "version": {"const": cls.VERSION}}
        schema["properties"] = {**header, **schema["properties"]}
        schema["required"] = [*header, *schema.get("required", [])]
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _plain(value: Any) -> Any:
    """A field's value as JSON data: a dataclass, or a dict of them, as dicts; anything else
    as it is (the same object: a report may add to it through the JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict) and any(dataclasses.is_dataclass(v) for v in value.values()):
        return {key: _plain(item) for key, item in value.items()}
    return value


def open_hdf5(path: str | Path, what: str = "HDF5 file") -> h5py.File:
    """``path`` opened read-only (use it as a context manager); a missing file, or one that is
    not HDF5 (truncated, another format), is one FcinvertError line naming it."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FcinvertError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        reason = str(error).split("(")[0].strip() or "unreadable"
        raise FcinvertError(
            f"{path}: not a readable HDF5 file ({reason}: truncated or another format)"
        ) from None
