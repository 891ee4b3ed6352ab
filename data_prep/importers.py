"""Importers: common VTG annotation formats -> one list of relevant-query records.

| format        | input                                                                                 |
|---------------|---------------------------------------------------------------------------------------|
| `charades`    | Charades-STA lines `VID START END##sentence`; durations from `--durations` (JSON {vid: s} or CSV `id,...,length`) |
| `activitynet` | ActivityNet Captions JSON `{vid: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}` |
| `qvhighlights`| QVHighlights JSONL `{"qid", "query", "vid", "duration", "relevant_windows": [[s, e], ...]}` (first window) |
| `tvgbench`    | Time-R1 / TVGBench JSON list `{"video", "query"|"question"|"sentence", "timestamp"|"solution"|"span", "duration", "video_start"?, "video_end"?}` |
| `released`    | the released HI-VTG schema: its relevant queries                                       |
| `jsonl`       | generic JSONL `{"video", "query", "timestamp": [s, e], "duration", "video_start"?, "video_end"?, "context"?}` |

Dense captions of the same video (other queries with their spans) become each record's
`video_context`. A record whose span does not fit its video (negative, reversed, or beyond the
duration / clip window by more than half a second) is not imported: it goes to the returned
rejects with its reason.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rarft_plugin.dataset import load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_jsonl

TOLERANCE_S = 0.5


@dataclass(frozen=True)
class QueryRecord:
    """One relevant VTG query."""

    video: str
    query: str
    timestamp: tuple[float, float]
    duration: float
    video_start: float | None = None
    video_end: float | None = None
    video_context: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.video}|{self.timestamp[0]:.3f}|{self.timestamp[1]:.3f}|{self.query}"


def span_problem(timestamp: tuple[float, float], duration: float, start: float | None, end: float | None) -> str | None:
    """Why a span cannot be used, or None."""
    s, e = timestamp
    if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e < s:
        return f"span {list(timestamp)} is negative, reversed or not finite"
    window = (end if end is not None else duration) - (start or 0.0)
    if e > window + TOLERANCE_S:
        return f"span {list(timestamp)} ends after the video (clip) length {window:.2f} s"
    return None


def with_context(records: list[QueryRecord]) -> list[QueryRecord]:
    """Every record gets the captions of its video (spans and sentences) as context."""
    by_video: dict[str, list[QueryRecord]] = defaultdict(list)
    for record in records:
        by_video[record.video].append(record)
    out = []
    for record in records:
        captions = sorted(by_video[record.video], key=lambda r: r.timestamp)
        context = tuple(f"{r.timestamp[0]:.1f}-{r.timestamp[1]:.1f}s: {r.query}" for r in captions)
        out.append(QueryRecord(**{**record.__dict__, "video_context": context}))
    return out


def _record(source: str, where: str, video: Any, query: Any, timestamp: Any, duration: Any,
            start: Any = None, end: Any = None) -> QueryRecord:
    def number(value, name):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise DataError(f"must be a number, got {value!r}", source=source, record=where, field=name)
        try:
            return float(value)
        except ValueError:
            raise DataError(f"must be a number, got {value!r}", source=source, record=where, field=name) from None

    if not isinstance(video, str) or not video.strip():
        raise DataError("must be a non-empty string", source=source, record=where, field="video")
    if not isinstance(query, str) or not query.strip():
        raise DataError("must be a non-empty string", source=source, record=where, field="query")
    if not isinstance(timestamp, (list, tuple)) or len(timestamp) != 2:
        raise DataError(f"must be [start, end], got {timestamp!r}", source=source, record=where, field="timestamp")
    return QueryRecord(
        video=video.strip(), query=" ".join(query.split()),
        timestamp=(number(timestamp[0], "timestamp"), number(timestamp[1], "timestamp")),
        duration=number(duration, "duration"),
        video_start=None if start is None else number(start, "video_start"),
        video_end=None if end is None else number(end, "video_end"), source=source,
    )


def _durations(path: Path | None) -> dict[str, float]:
    if path is None:
        return {}
    if path.suffix == ".json":
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    column = next((c for c in ("length", "duration") if rows and c in rows[0]), None)
    if column is None:
        raise DataError("needs an 'id' and a 'length' or 'duration' column", source=str(path))
    return {row["id"]: float(row[column]) for row in rows}


def import_charades(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    lengths = _durations(durations)
    records, missing = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, sentence = line.partition("##")
        parts = head.split()
        if not sep or len(parts) != 3:
            raise DataError("expected 'VID START END##sentence'", source=str(path), record=f"line {number}")
        video, start, end = parts
        if video not in lengths:
            missing.add(video)
            continue
        records.append(_record(str(path), f"line {number}", video, sentence, (start, end), lengths[video]))
    if missing:
        raise DataError(f"no duration for {len(missing)} video(s) (give --durations): {sorted(missing)[:10]}",
                        source=str(path))
    return records


def import_activitynet(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    data = _json(path)
    if not isinstance(data, dict):
        raise DataError("expected a JSON object {video: {...}}", source=str(path))
    records = []
    for video, entry in data.items():
        stamps, sentences = entry.get("timestamps"), entry.get("sentences")
        if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
            raise DataError("needs equally long 'timestamps' and 'sentences'", source=str(path), record=video)
        for index, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            records.append(_record(str(path), f"{video}[{index}]", video, sentence, stamp, entry.get("duration")))
    return records


def import_qvhighlights(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    records = []
    for number, row in read_jsonl(path):
        windows = row.get("relevant_windows") or []
        if not windows:
            raise DataError("needs relevant_windows", source=str(path), record=f"line {number}",
                            field="relevant_windows")
        records.append(_record(str(path), f"line {number}", row.get("vid"), row.get("query"), windows[0],
                               row.get("duration")))
    return records


def _first(row: dict, names: tuple[str, ...]) -> Any:
    return next((row[name] for name in names if name in row), None)


def import_tvgbench(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    data = _json(path)
    rows = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else None
    if rows is None:
        raise DataError("expected a JSON list of records", source=str(path))
    return [
        _record(str(path), str(index), _first(row, ("video", "video_path", "vid")),
                _first(row, ("query", "question", "sentence", "caption")),
                _first(row, ("timestamp", "solution", "span", "timestamps")), row.get("duration"),
                row.get("video_start"), row.get("video_end"))
        for index, row in enumerate(rows)
    ]


def import_released(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    examples, _ = load_examples(path)  # spans of relevant queries resolved as the loader does
    return [
        QueryRecord(video=e.item.video, query=e.label.query, timestamp=e.label.timestamp, duration=e.item.duration,
                    video_start=e.item.video_start, video_end=e.item.video_end, source=str(path))
        for e in examples
        if e.label.relevant
    ]


def import_jsonl(path: Path, durations: Path | None = None) -> list[QueryRecord]:
    return [
        _record(str(path), f"line {number}", row.get("video"), row.get("query"), row.get("timestamp"),
                row.get("duration"), row.get("video_start"), row.get("video_end"))
        for number, row in read_jsonl(path)
    ]


IMPORTERS: dict[str, Callable[[Path, Path | None], list[QueryRecord]]] = {
    "charades": import_charades,
    "activitynet": import_activitynet,
    "qvhighlights": import_qvhighlights,
    "tvgbench": import_tvgbench,
    "released": import_released,
    "jsonl": import_jsonl,
}


def import_records(path: Path, fmt: str, durations: Path | None = None) -> tuple[list[QueryRecord], list[dict]]:
    """(usable records with video context, rejects with reasons)."""
    if fmt not in IMPORTERS:
        raise DataError(f"unknown format {fmt!r}; expected one of {sorted(IMPORTERS)}")
    if not path.exists():
        raise DataError("file not found", source=str(path))
    usable, rejects = [], []
    for record in IMPORTERS[fmt](path, durations):
        problem = None if record.duration > 0 else f"duration {record.duration} is not positive"
        problem = problem or span_problem(record.timestamp, record.duration, record.video_start, record.video_end)
        if problem:
            rejects.append({"stage": "import", "reason": problem, "video": record.video, "query": record.query})
        else:
            usable.append(record)
    return with_context(usable), rejects


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", source=str(path)) from None
