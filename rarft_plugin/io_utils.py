"""Small file helpers shared by the CLIs: reading input files, and writing outputs atomically.

Reading (`read_text`, `read_json`, `read_jsonl`, `iter_jsonl`): every way an input file can be
unusable is a `DataError` naming the file (and the line, record and field where there is one),
never a traceback: not found, a directory, not UTF-8 (a binary file), not JSON, nested too deeply
for the parser, or holding a lone surrogate (`"\\ud800"`: valid JSON, but no character, so no
UTF-8 output and no tokenizer can take it; `rarft_plugin.schema.surrogate_location` finds one).

Writing (`write_atomic`, `write_files_atomic`, `write_jsonl_atomic`): readers see the old file or the
whole new one, never a part; several files of one result are all staged before any is replaced.
Text is written as UTF-8 with a lone surrogate escaped as `\\udXXX` (`backslashreplace`): inside a
JSON string that is the escape JSON itself uses, so nothing is lost and nothing fails half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from rarft_plugin.errors import DataError
from rarft_plugin.schema import JsonValue, surrogate_location

__all__ = [
    "current_umask",
    "file_sha256",
    "iter_jsonl",
    "jsonl_text",
    "read_json",
    "read_jsonl",
    "read_records",
    "read_text",
    "write_atomic",
    "write_files_atomic",
    "write_jsonl_atomic",
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
    write_files_atomic({path: content})


def write_files_atomic(contents: Mapping[str | Path, str | bytes]) -> None:
    """Write several files as one result: every file is staged (written and fsynced under a temporary
    name beside it) before the first is moved into place, so a failure while writing (a full disk)
    leaves every old file as it was; the moves themselves cannot fail half-way on one filesystem."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in contents.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_staged(path, content), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise


def _staged(path: Path, content: str | bytes) -> str:
    """`content` in a new temporary file beside `path` (mode as `open` would give), fsynced; its name."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8", errors="backslashreplace") if isinstance(content, str) else content)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def jsonl_text(rows: Iterable[dict[str, JsonValue]]) -> str:
    """JSON Lines: one object per line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, JsonValue]]) -> None:
    write_atomic(path, jsonl_text(rows))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str | Path) -> str:
    """A text file's content; a DataError naming the file when it is missing, a directory, unreadable
    or not UTF-8."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", source=str(path)) from None
    except UnicodeDecodeError as error:
        raise DataError(
            f"not UTF-8 text (byte {error.start}: {error.reason}); is it a binary file?", source=str(path)
        ) from None
    except OSError as error:
        raise DataError(f"cannot be read ({error.strerror or error})", source=str(path)) from None


def read_json(path: str | Path, *, records: bool = True) -> JsonValue:
    """A JSON file's value; a DataError naming the file (and the record and field holding a lone
    surrogate: with `records`, a top-level list's elements are the records).

    >>> read_json("missing.json")
    Traceback (most recent call last):
    rarft_plugin.errors.DataError: missing.json: file not found
    """
    value = _json_value(read_text(path), source=str(path))
    if records and isinstance(value, list):
        for index, record in enumerate(value):
            _refuse_non_text(record, source=str(path), record=index)
    else:
        _refuse_non_text(value, source=str(path))
    return value


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, JsonValue] | DataError]]:
    """(line number, object) for each non-blank line, or (line number, DataError) for a line that is
    not one: for readers that report every bad line. The file itself must be readable text."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = {"source": str(path), "record": f"line {number}"}
        try:
            row = _json_value(line, **where)
            if not isinstance(row, dict):
                raise DataError("expected a JSON object", **where)
            _refuse_non_text(row, **where)
        except DataError as error:
            yield number, error
            continue
        yield number, row


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, JsonValue]]]:
    """(line number, object) for each non-blank line; a bad line is a DataError naming file and line."""
    for number, row in iter_jsonl(path):
        if isinstance(row, DataError):
            raise row
        yield number, row


def read_records(path: str | Path) -> list[tuple[str, dict[str, JsonValue]]]:
    """(location, object) of each record of a JSON array file ("element N") or of a JSONL file ("line N"),
    told apart by the first character; a record that is not an object is a DataError naming it."""
    if not read_text(path).lstrip().startswith("["):
        return [(f"line {number}", row) for number, row in read_jsonl(path)]
    rows = read_json(path)
    if not isinstance(rows, list):  # pragma: no cover - a text starting with "[" that parses is a list
        raise DataError("expected a JSON array of objects", source=str(path))
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError("expected a JSON object", source=str(path), record=f"element {index}")
    return [(f"element {index}", row) for index, row in enumerate(rows)]


def _json_value(text: str, *, source: str, record: object = None) -> JsonValue:
    try:
        return json.loads(text)
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", source=source, record=record) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", source=source, record=record) from None


def _refuse_non_text(value: JsonValue, *, source: str, record: object = None) -> None:
    where = surrogate_location(value)
    if where is not None:
        raise DataError(
            "holds a lone surrogate (such as \\ud800): not text, refused rather than written half-way",
            source=source,
            record=record,
            field=where or None,
        )
