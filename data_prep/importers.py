"""Importers: common VTG annotation formats -> one list of relevant-query records.

Formats (`--format`):

- `charades`: Charades-STA lines `VID START END##sentence`; durations from `--durations` (JSON
  `{vid: s}` or CSV `id,...,length`)
- `activitynet`: ActivityNet Captions JSON `{vid: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}`
- `qvhighlights`: QVHighlights JSONL `{"qid", "query", "vid", "duration", "relevant_windows": [[s, e], ...]}`
  (the first window)
- `tvgbench`: Time-R1 / TVGBench JSON list, fields named as `TVGBENCH_FIELDS` lists them: Time-R1's
  own `tvgbench.json` writes `path`, `question`, `answer` (the span [s, e] relative to the clip),
  other exports `video`, `query`, `timestamp`; `duration`, `video_start`?, `video_end`?
- `released`: the released HI-VTG schema: its relevant queries
- `jsonl`: generic JSONL `{"video", "query", "timestamp": [s, e], "duration", "video_start"?, "video_end"?,
  "context"?}`

Dense captions of the same video (other queries with their spans) become each record's
`video_context`. A record that cannot be used — a missing or malformed field (numbers and spans are
checked by `rarft_plugin.schema`: finite, a span 0 <= start <= end, times at most a week, a
duration > 0; a query as `schema.text_problem` says: no special-token marker, answer tag or
control character, at most 500 characters), a span that ends after its video (clip) window
(`rarft_plugin.schema.span_problem`, the rule every reader applies: more than half a second after
it) — is not imported: it goes to the
returned rejects with its reason, naming file and record; one odd record never refuses a file. Only
file-level problems (not found, not JSON, the wrong top-level shape, Charades without `--durations`)
are errors. `duration` may be missing (`null`) where the annotations lack it (TVGBench clips carry
`video_start`/`video_end`): the span is then checked against the clip window only, and the length is
taken from the video when it is converted."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rarft_plugin.dataset import load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_json, read_jsonl, read_text
from rarft_plugin.schema import JsonValue, clip_length, parse_seconds, parse_span, span_problem, text_problem

__all__ = [
    "DURATIONS_HELP",
    "IMPORTERS",
    "TVGBENCH_FIELDS",
    "Imported",
    "QueryRecord",
    "import_activitynet",
    "import_charades",
    "import_jsonl",
    "import_qvhighlights",
    "import_records",
    "import_released",
    "import_tvgbench",
    "record_span_problem",
    "with_context",
]

DURATIONS_HELP = (
    "video lengths, for formats whose annotations lack them (charades): a JSON object "
    "{\"VIDEO_ID\": seconds, ...} or a CSV with an 'id' column and a 'length' or 'duration' "
    "column in seconds (Charades' Charades_v1_test.csv)"
)


@dataclass(frozen=True)
class QueryRecord:
    """One relevant VTG query."""

    video: str
    query: str
    timestamp: tuple[float, float]
    duration: float | None
    video_start: float | None = None
    video_end: float | None = None
    video_context: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.video}|{self.timestamp[0]:.3f}|{self.timestamp[1]:.3f}|{self.query}"


def record_span_problem(record: QueryRecord) -> str | None:
    """Why a record's span does not fit its video (clip), or None (`rarft_plugin.schema.span_problem`)."""
    return span_problem(record.timestamp, clip_length(record.duration, record.video_start, record.video_end))


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


def _record(
    source: str,
    where: str,
    video: JsonValue,
    query: JsonValue,
    timestamp: JsonValue,
    duration: JsonValue,
    start: JsonValue = None,
    end: JsonValue = None,
) -> QueryRecord:
    """A record from an annotation's fields (numbers may be written as text); a DataError naming the field."""
    try:
        for name, value in (("video", video), ("query", query)):
            if not isinstance(value, str) or not value.strip():
                raise DataError("must be a non-empty string", field=name)
        query = " ".join(query.split())
        problem = text_problem(query, "query")  # it goes into the prompts and the built items
        if problem:
            raise DataError(problem, field="query")
        span = parse_span(timestamp, text=True)
        if span is None:
            raise DataError(f"must be [start, end], got {timestamp!r}", field="timestamp")
        return QueryRecord(
            video=video.strip(),
            query=query,
            timestamp=span,
            duration=None if duration is None else parse_seconds(duration, "duration", positive=True, text=True),
            video_start=None if start is None else parse_seconds(start, "video_start", text=True),
            video_end=None if end is None else parse_seconds(end, "video_end", text=True),
            source=source,
        )
    except DataError as error:
        raise error.located(source=source, record=where) from None


def _durations(path: Path | None) -> dict[str, float]:
    """{video id: seconds} from a `--durations` file (DURATIONS_HELP)."""
    if path is None:
        return {}
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError('expected a JSON object {"VIDEO_ID": seconds, ...}', source=str(path))
        pairs = [(str(key), value, str(key)) for key, value in data.items()]
    else:
        rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
        column = next((c for c in ("length", "duration") if rows and c in rows[0]), None)
        if column is None or "id" not in rows[0]:
            raise DataError("needs an 'id' and a 'length' or 'duration' column", source=str(path))
        pairs = [(row["id"], row[column], f"line {number}") for number, row in enumerate(rows, start=2)]
    lengths = {}
    for video, value, where in pairs:
        try:
            lengths[video] = parse_seconds(value, "duration", positive=True, text=True)
        except DataError as error:
            raise error.located(source=str(path), record=where) from None
    return lengths


Imported = list["QueryRecord | DataError"]  # usable records and per-record problems, in file order


def _guarded(make: Callable[..., QueryRecord], *args: JsonValue) -> QueryRecord | DataError:
    """`make(*args)`, or the DataError it raised: one bad record is a reject, not the end of the file."""
    try:
        return make(*args)
    except DataError as error:
        return error


def import_charades(path: Path, durations: Path | None = None) -> Imported:
    if durations is None:
        raise DataError("Charades-STA lines carry no video length: give --durations", source=str(path))
    lengths = _durations(durations)
    records: Imported = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        head, sep, sentence = line.partition("##")
        parts = head.split()
        if not sep or len(parts) != 3:
            records.append(DataError("expected 'VID START END##sentence'", source=str(path), record=where))
        elif parts[0] not in lengths:
            records.append(
                DataError(f"no duration for video {parts[0]!r} in {durations}", source=str(path), record=where)
            )
        else:
            records.append(_guarded(_record, str(path), where, parts[0], sentence, parts[1:], lengths[parts[0]]))
    return records


def import_activitynet(path: Path, durations: Path | None = None) -> Imported:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a JSON object {video: {...}}", source=str(path))
    records: Imported = []
    for video, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        stamps, sentences = entry.get("timestamps"), entry.get("sentences")
        if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
            records.append(DataError("needs equally long 'timestamps' and 'sentences'", source=str(path), record=video))
            continue
        for index, (stamp, sentence) in enumerate(zip(stamps, sentences, strict=True)):
            records.append(
                _guarded(_record, str(path), f"{video}[{index}]", video, sentence, stamp, entry.get("duration"))
            )
    return records


def import_qvhighlights(path: Path, durations: Path | None = None) -> Imported:
    records: Imported = []
    for number, row in read_jsonl(path):
        windows = row.get("relevant_windows")
        if not isinstance(windows, list) or not windows:
            records.append(
                DataError("needs relevant_windows", source=str(path), record=f"line {number}", field="relevant_windows")
            )
            continue
        records.append(
            _guarded(
                _record, str(path), f"line {number}", row.get("vid"), row.get("query"), windows[0], row.get("duration")
            )
        )
    return records


def _first(row: dict[str, JsonValue], names: tuple[str, ...]) -> JsonValue:
    return next((row[name] for name in names if name in row), None)


# A TVGBench record's fields, in `_record`'s argument order: each of rarft's names and the names it is read
# from, the first present wins.
# Time-R1's tvgbench.json writes path / question / answer; `answer` holds the span [s, e] relative to the
# clip window (read like `timestamp`: two numbers, or numbers written as text).
TVGBENCH_FIELDS: dict[str, tuple[str, ...]] = {
    "video": ("video", "path", "video_path", "vid"),
    "query": ("query", "question", "sentence", "caption"),
    "timestamp": ("timestamp", "answer", "solution", "span", "timestamps"),
    "duration": ("duration",),
    "video_start": ("video_start",),
    "video_end": ("video_end",),
}
_TVGBENCH_REQUIRED = ("video", "query", "timestamp")


def import_tvgbench(path: Path, durations: Path | None = None) -> Imported:
    data = read_json(path)
    rows = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else None
    if rows is None:
        raise DataError("expected a JSON list of records", source=str(path))
    return [_tvgbench_record(row, str(path), index) for index, row in enumerate(rows)]


def _tvgbench_record(row: JsonValue, source: str, index: int) -> QueryRecord | DataError:
    if not isinstance(row, dict):
        return DataError("expected an object", source=source, record=index)
    absent = [name for name in _TVGBENCH_REQUIRED if not any(key in row for key in TVGBENCH_FIELDS[name])]
    if absent:
        names = TVGBENCH_FIELDS[absent[0]]
        return DataError(
            f"missing: a TVGBench record names it {' or '.join(names)}", source=source, record=index, field=absent[0]
        )
    values = {name: _first(row, names) for name, names in TVGBENCH_FIELDS.items()}
    return _guarded(_record, source, str(index), *values.values())


def import_released(path: Path, durations: Path | None = None) -> Imported:
    examples, _ = load_examples(path)  # spans of relevant queries resolved as the loader does
    return [
        QueryRecord(
            video=e.item.video,
            query=e.label.query,
            timestamp=e.label.timestamp,
            duration=e.item.duration,
            video_start=e.item.video_start,
            video_end=e.item.video_end,
            source=str(path),
        )
        for e in examples
        if e.label.relevant
    ]


def import_jsonl(path: Path, durations: Path | None = None) -> Imported:
    return [
        _guarded(
            _record,
            str(path),
            f"line {number}",
            row.get("video"),
            row.get("query"),
            row.get("timestamp"),
            row.get("duration"),
            row.get("video_start"),
            row.get("video_end"),
        )
        for number, row in read_jsonl(path)
    ]


IMPORTERS: dict[str, Callable[[Path, Path | None], Imported]] = {
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
    usable, rejects = [], []
    for record in IMPORTERS[fmt](path, durations):
        if isinstance(record, DataError):
            rejects.append({"stage": "import", "reason": str(record)})
            continue
        problem = record_span_problem(record)
        if problem:
            rejects.append({"stage": "import", "reason": problem, "video": record.video, "query": record.query})
        else:
            usable.append(record)
    return with_context(usable), rejects
