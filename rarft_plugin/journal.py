"""An append-only JSONL journal: a key -> value store that survives `kill -9`.

Each finished unit of work is one line `{"key": ..., "value": ...}`, written and fsynced before the
work counts as done (`durable=False` only flushes: for caches, where losing the last few entries in
a crash costs a few repeated requests, not lost work). Reopening reads every complete line; a line
cut short by a crash is ignored (and counted), so a rerun redoes only that unit. Used for LLM
response caches and resumable pipelines."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from rarft_plugin.schema import JsonValue

__all__ = [
    "Journal",
    "not_a_journal",
]


class Journal:
    def __init__(self, path: str | Path, *, durable: bool = True):
        self.path = Path(path)
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._values: dict[str, JsonValue] = {}
        self.torn_lines = 0
        if self.path.exists():
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        self._values[entry["key"]] = entry["value"]
                    except (ValueError, KeyError, TypeError):
                        self.torn_lines += 1
            self._repair_tail()
        # a lone surrogate in a value (an LLM reply) is written as its JSON escape: lossless, never a crash
        self._handle = open(self.path, "a", encoding="utf-8", errors="backslashreplace")

    def _repair_tail(self) -> None:
        """A crash can leave a last line without its newline: end it so the next append starts clean."""
        with open(self.path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            last = handle.read(1)
        if last != b"\n":
            with open(self.path, "ab") as handle:
                handle.write(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self._values.get(key, default)

    def put(self, key: str, value: JsonValue) -> None:
        line = json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            if self.durable:
                os.fsync(self._handle.fileno())
            self._values[key] = value

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def not_a_journal(path: str | Path) -> str | None:
    """Why an existing file is not a journal (its first line is no `{"key", "value"}` entry), or None
    (a journal, an empty file, or no file): a journal is only ever opened on a journal."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), None)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        return f"cannot be read as a journal ({error})"
    try:
        entry = json.loads(first) if first is not None else {"key": "", "value": None}
    except (ValueError, RecursionError):
        entry = None
    if not (isinstance(entry, dict) and {"key", "value"} <= set(entry)):
        return "holds lines that are not journal entries"
    return None
