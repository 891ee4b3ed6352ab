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
        self._handle = open(self.path, "a", encoding="utf-8")

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
