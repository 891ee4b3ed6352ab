"""Small file helpers shared by the CLIs: atomic writes and line-numbered JSONL reading."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from rarft_plugin.errors import DataError
from rarft_plugin.schema import JsonValue

__all__ = [
    "current_umask",
    "write_atomic",
    "write_jsonl_atomic",
    "read_jsonl",
]


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Write `content` (text as UTF-8, or bytes) to `path` so that readers see the old file or the
    whole new one, never a part.

    The file gets the mode a plain `open(path, "w")` would give it (0666 less the umask): the
    temporary file `mkstemp` creates is private (0600), which would otherwise carry over.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8") if isinstance(content, str) else content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, JsonValue]]) -> None:
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, JsonValue]]]:
    """(line number, object) for each non-blank line; a bad line is a DataError naming file and line."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", source=str(path)) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"not valid JSON ({error})", source=str(path), record=f"line {number}") from None
            if not isinstance(row, dict):
                raise DataError("expected a JSON object", source=str(path), record=f"line {number}")
            yield number, row
