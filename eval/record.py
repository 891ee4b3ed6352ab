"""An evaluated run as `metrics.json` holds it: its metrics (`eval.metrics`' typed rows) and what they were
measured with.

`record_json` writes a `RunRecord` as the JSON object of metrics.json; `read_run` / `record_from_json` read one
back into the same types, so `rarft-eval compare` renders a stored run with the code that rendered it fresh, and
a metrics.json that lacks a metric is refused where it is read, naming the metric.

The layout is the one earlier versions wrote, so their runs still compare: the metric groups at the top level
(`count`, `ra_iou`, `relevance`, `vtg_iou`, `explanation`, `by_difficulty`, `by_category`, `explained`,
`strict_recall`, `prediction_defects`), the relevant queries' row inside `by_difficulty` as `original`, then the
run's settings and provenance (`format`, `judge`, `name`, `dataset`, `predictions`, `data`, `inference`,
`produced_by`, `warnings`), each left out where the run has none.

A dataclass becomes an object of its fields, named as the field's metadata "json" says where the paper's name
is no identifier ("R@0.5"); what a run was measured with is a JSON record passed through as written, typed by
the TypedDicts below (the keys a reader may use).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import KW_ONLY, MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TypedDict

from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_json
from rarft_plugin.schema import JsonValue

from .judge import JudgeCalls
from .metrics import FormatCompliance, Metrics

__all__ = [
    "DataCheck",
    "DatasetRecord",
    "InferenceRecord",
    "JudgeSettings",
    "PredictionFile",
    "Provenance",
    "RunRecord",
    "from_json",
    "read_run",
    "record_from_json",
    "record_json",
    "row_json",
    "to_json",
]

InferenceRecord = dict[str, JsonValue]  # what `infer` recorded beside a prediction file (`eval.infer.meta_path`)
Row = typing.TypeVar("Row")


class JudgeSettings(TypedDict, total=False):
    """How a run was judged (`judge`). The keys from `model` on are there only when an LLM judge ran."""

    relevance: str  # "rule" (the core parser) or "llm"
    explanations: str | None  # "llm" with --llm-explanations, else None
    answer_reading: str  # `eval.reading.ANSWER_READING` ("released"; 0.1.0 also wrote "last_block")
    sbert_text: str | None  # `eval.reading.SBERT_TEXT` ("released"; 0.1.0 also wrote "answer"); None without SBERT
    sbert_model: str | None
    model: str
    base_url: str
    unreadable: dict[str, int]  # per judge (`eval.judge.JUDGES`)
    failed: dict[str, int]
    calls: dict[str, JudgeCalls]
    unknown_categories: int
    usage: dict[str, int]  # requests, cached, retries, prompt_tokens, completion_tokens


class DatasetRecord(TypedDict):
    """Which evaluation set a run answers (`dataset`)."""

    file: str | None
    sha256: str | None
    paper: str | None  # the paper's name for it (`eval.paper.DATASETS`), where known
    kind: str  # `eval.metrics.dataset_kind`


class DataCheck(TypedDict, total=False):
    """The predictions checked against their data file (`data`, with --data or the file infer recorded)."""

    file: str
    summary: str  # `rarft_plugin.dataset.LoadReport.summary`
    recovered_spans: int
    assumed_spans: int
    unknown_spans: list[str]
    spans_beyond_duration: int
    unknown_categories: list[str]
    missing_durations: int
    missing_predictions: list[str]  # query keys of the file without a prediction
    unmatched_rows: list[str]  # predictions of no query of the file
    gt_timestamp_differs: list[str]  # predictions whose gt_timestamp is not the file's


class PredictionFile(TypedDict):
    file: str
    sha256: str


class Provenance(TypedDict):
    """What produced a run (`produced_by`)."""

    evaluated_at: str  # UTC, ISO 8601
    packages: dict[str, str | None]  # `eval.provenance.EVALUATION_PACKAGES` versions
    predictions: list[PredictionFile]


@dataclass(frozen=True)
class RunRecord:
    """An evaluated run: the metrics, then the settings and provenance `rarft-eval evaluate` adds."""

    metrics: Metrics
    _: KW_ONLY  # the rest by name, in metrics.json's order (`judge`, always there, after the optional `format`)
    format: FormatCompliance | None = None  # None: a run from before format compliance was checked
    judge: JudgeSettings
    name: str | None = None  # --name: the report's rows, compare's columns
    dataset: DatasetRecord | None = None
    predictions: tuple[str, ...] | None = None  # the prediction files, in the order given
    data: DataCheck | None = None
    inference: tuple[InferenceRecord, ...] | None = None  # one per shard infer recorded
    produced_by: Provenance | None = None
    warnings: tuple[str, ...] | None = None  # None: not worked out yet (`eval.report.run_warnings`)


def row_json(row: object) -> dict[str, JsonValue]:
    """A typed row (a dataclass instance) as a JSON object of its fields (module docstring)."""
    return {item.metadata.get("json", item.name): to_json(getattr(row, item.name)) for item in fields(row)}


def to_json(value: object) -> JsonValue:
    """A value of a typed row as JSON: rows as objects, dicts as objects, tuples and lists as arrays."""
    if is_dataclass(value) and not isinstance(value, type):
        return row_json(value)
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}")


def from_json(kind: type[Row], value: JsonValue) -> Row:
    """`value` read back as the typed row `kind` (`row_json`'s inverse); a missing field is a DataError naming it."""
    return _read(kind, value, "")


def _read(kind: object, value: JsonValue, path: str) -> object:
    """`value` as `kind`: a typed row (its fields by type hint; one already read is kept), `X | None`,
    `dict[str, X]`, `tuple[X, ...]`; anything else (numbers, strings, TypedDict records) as it is."""
    if isinstance(kind, type) and is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise DataError(f"expected an object, got {json.dumps(value)[:40]}", field=path or None)
        hints = typing.get_type_hints(kind)
        known = {}
        for item in fields(kind):
            key = item.metadata.get("json", item.name)
            where = f"{path}.{key}" if path else key
            if key in value:
                known[item.name] = _read(hints[item.name], value[key], where)
            elif item.default is MISSING and item.default_factory is MISSING:
                raise DataError(
                    "missing (written by another version of rarft-eval? evaluate the predictions again)", field=where
                )
        return kind(**known)
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        members = [member for member in arguments if member is not type(None)]
        # `X | None` reads X; a union of several (JsonValue) is JSON already
        return value if value is None or len(members) > 1 else _read(members[0], value, path)
    if origin is dict and isinstance(value, dict):
        return {key: _read(arguments[1], item, f"{path}.{key}") for key, item in value.items()}
    if origin is tuple and isinstance(value, list):
        return tuple(_read(arguments[0], item, path) for item in value)
    return value


def record_json(record: RunRecord) -> dict[str, JsonValue]:
    """The metrics.json object of a run (module docstring: the layout)."""
    out = row_json(record.metrics)
    levels = {level: row_json(row) for level, row in record.metrics.by_difficulty.items()}
    original = out.pop("original")
    out["by_difficulty"] = levels if original is None else {**levels, "original": original}
    for item in fields(record)[1:]:
        value = getattr(record, item.name)
        if value is not None:
            out[item.name] = to_json(value)
    return out


def record_from_json(data: JsonValue, source: str) -> RunRecord:
    """A metrics.json object read back (`record_json`'s inverse); DataError naming `source` and the field."""
    if not isinstance(data, dict) or "ra_iou" not in data:
        raise DataError("not a rarft-eval metrics.json", source=source)
    levels = data.get("by_difficulty")
    if not isinstance(levels, dict):
        raise DataError("missing, or not an object", source=source, field="by_difficulty")
    try:
        metrics = from_json(
            Metrics,
            {
                **data,
                "by_difficulty": {key: row for key, row in levels.items() if key != "original"},
                "original": levels.get("original"),
            },
        )
        return from_json(RunRecord, {**data, "metrics": metrics})
    except DataError as error:
        raise error.located(source=source) from None


def read_run(path: Path) -> RunRecord:
    """An evaluated run's metrics.json (a run directory or the file itself)."""
    path = path / "metrics.json" if path.is_dir() else path
    if not path.exists():
        raise DataError("file not found (give a run directory or its metrics.json)", source=str(path))
    return record_from_json(read_json(path), str(path))
