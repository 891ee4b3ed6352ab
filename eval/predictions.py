"""Prediction files: one JSON object per query, in the released evaluation code's fields.

| field            | type              | required | meaning                                                  |
|------------------|-------------------|----------|----------------------------------------------------------|
| `model_output`   | str               | yes      | the model's full response                                |
| `gt_relevant`    | bool              | yes      | ground-truth relevance                                   |
| `gt_timestamp`   | [s, e] or null    | yes      | ground-truth segment (relevant queries; ignored otherwise) |
| `gt_output`      | str               | yes      | reference answer as the data file writes it (`a`, tags and all) |
| `gt_categories`  | list[str] or null | yes      | edited semantic categories (irrelevant queries)          |
| `hardness_level` | str or null       | one of   | a difficulty of `rarft_plugin.schema` (its aliases too)  |
| `irrelevance_level` | str or ""      | the two  | the same, as the released inference writes it            |
| `video`, `query` | str               | yes      | what was asked                                           |
| `id`             | str               | no       | "ITEM:QUERY" (`rarft-eval infer` writes it)              |
| `truncated`      | bool              | no       | the generation stopped at its token limit (`infer` writes it) |

A file is JSONL (`rarft-eval infer`, which records its settings beside it: `meta_path`) or one JSON
array of such objects (the released inference's output, which scores as it is). `gt_output` is the
query's `a` as the data file writes it, as the released inference writes it: a_time or a_refusal in an
`<answer>` block, with a `<correct>` block in the human-annotated file ("" ok). Other fields are carried
through untouched.

The item of a row (the video record its query belongs to, which the 1:1 hardness subsets
group by) is its id up to the last ':'. A row without `id` is named after its file and line;
its item is (video, relevant query): a relevant row's own query, an irrelevant row's the query
of the last relevant row of the same video before it in the file (the released inference writes
an item's queries together, relevant first). Not the video alone: 1,097 HI-Charades items share
753 videos. With the evaluation file at hand, `join_data` takes items and missing levels from it.

Problems in these files are ours: a bad field is a `DataError` naming file, line and field.
Odd but usable values are kept and listed in `Prediction.defects` (counted in the report): a
category outside the taxonomy (left out of the categories), a timestamp on an irrelevant query
(ignored). Problems in `model_output` are the model's: they are scored, never raised.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rarft_plugin.dataset import Example
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_records
from rarft_plugin.schema import CATEGORIES, JsonValue, parse_categories, parse_span, query_difficulty

__all__ = [
    "LEVEL_FIELDS",
    "REQUIRED",
    "Prediction",
    "coerce_predictions",
    "defect_counts",
    "join_data",
    "load_predictions",
    "meta_path",
    "parse_prediction",
    "prediction_from_example",
]

REQUIRED = ("video", "query", "model_output", "gt_relevant", "gt_timestamp", "gt_output", "gt_categories")
LEVEL_FIELDS = ("hardness_level", "irrelevance_level")  # rarft's name, the released inference's name


@dataclass(frozen=True)
class Prediction:
    id: str
    video: str
    query: str
    model_output: str
    gt_relevant: bool
    gt_timestamp: tuple[float, float] | None
    gt_output: str
    gt_categories: tuple[str, ...]
    hardness_level: str | None
    item: str = ""  # the video record the query belongs to; default: the id up to its last ':'
    defects: tuple[str, ...] = ()  # odd values of the row, kept or ignored (module docstring)
    has_id: bool = True  # False: a row of the released inference's output, named after its file and line
    truncated: bool | None = None  # the generation hit its token limit; None: not recorded

    def __post_init__(self):
        if not self.item:
            object.__setattr__(self, "item", self.id.rsplit(":", 1)[0])

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "id": self.id,
            "video": self.video,
            "query": self.query,
            "model_output": self.model_output,
            "gt_relevant": self.gt_relevant,
            "gt_timestamp": list(self.gt_timestamp) if self.gt_timestamp else None,
            "gt_output": self.gt_output,
            "gt_categories": list(self.gt_categories),
            "hardness_level": self.hardness_level,
            **({"truncated": self.truncated} if self.truncated is not None else {}),
        }


def prediction_from_example(example: Example, model_output: str, truncated: bool | None = None) -> Prediction:
    """A prediction row for one labelled example of an evaluation file."""
    label = example.label
    return Prediction(
        id=example.key,
        video=example.item.video,
        query=label.query,
        model_output=model_output,
        gt_relevant=label.relevant,
        gt_timestamp=label.timestamp,
        gt_output=example.item.queries[example.query_index].answer,  # as written, as the released inference does
        gt_categories=label.categories,
        hardness_level=label.difficulty,
        truncated=truncated,
    )


def parse_prediction(row: dict[str, JsonValue], *, default_id: str = "", item: str = "") -> Prediction:
    """Validate one row (raises DataError naming the field). `default_id` names a row without `id`;
    `item` is its item (see the module docstring)."""
    missing = [name for name in REQUIRED if name not in row]
    if not any(name in row for name in LEVEL_FIELDS):
        missing.append(" or ".join(LEVEL_FIELDS))
    if missing:
        raise DataError(f"missing field(s) {missing}; a prediction needs {[*REQUIRED, LEVEL_FIELDS]}", field=missing[0])
    for name in ("video", "query", "model_output", "gt_output"):
        if not isinstance(row[name], str):
            raise DataError(f"must be a string, got {type(row[name]).__name__}", field=name)
    has_id = row.get("id") is not None
    if has_id and not isinstance(row["id"], (str, int)):
        raise DataError(f"must be a string, got {type(row['id']).__name__}", field="id")
    if not has_id and not default_id:
        raise DataError("is missing", field="id")
    truncated = row.get("truncated")
    if truncated is not None and not isinstance(truncated, bool):
        raise DataError(f"must be true, false or null, got {truncated!r}", field="truncated")
    categories = parse_categories(row["gt_categories"], "gt_categories")
    relevant = row["gt_relevant"]
    if not isinstance(relevant, bool):
        raise DataError(f"must be true or false, got {relevant!r}", field="gt_relevant")
    if not row["query"].strip():
        raise DataError("must not be empty", field="query")
    defects = [f"category {c!r} outside the taxonomy (left out)" for c in categories if c not in CATEGORIES]
    timestamp = None
    if relevant:
        timestamp = parse_span(row["gt_timestamp"], "gt_timestamp")
        if timestamp is None:
            raise DataError("a relevant query needs [start, end]", field="gt_timestamp")
    elif row["gt_timestamp"] not in (None, []):
        defects.append("gt_timestamp on an irrelevant query (ignored)")
    level_field = next(name for name in LEVEL_FIELDS if name in row)
    try:
        level = query_difficulty(row[level_field], relevant=relevant, categories=categories)
    except ValueError as error:
        raise DataError(str(error), field=level_field) from None
    return Prediction(
        id=str(row["id"]) if has_id else default_id,
        video=row["video"],
        query=row["query"],
        model_output=row["model_output"],
        gt_relevant=relevant,
        gt_timestamp=timestamp,
        gt_output=row["gt_output"],
        gt_categories=tuple(c for c in categories if c in CATEGORIES),
        hardness_level=level,
        item="" if has_id else item,
        defects=tuple(defects),
        has_id=has_id,
        truncated=truncated,
    )


def _item_of(row: dict[str, JsonValue], last_relevant: dict[str, str]) -> str:
    """The item of a row without id: (video, relevant query); `last_relevant` tracks the file so far."""
    video, query = row.get("video"), row.get("query")
    if not isinstance(video, str):
        return ""  # parse_prediction rejects the row
    if row.get("gt_relevant") is True:
        last_relevant[video] = query
    return json.dumps([video, last_relevant.get(video)])


def load_predictions(paths: str | Path | Sequence[str | Path]) -> list[Prediction]:
    """Predictions of one file, or of several (the shards of one run). Ids must be unique across them."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    predictions: list[Prediction] = []
    where: dict[str, str] = {}
    for path in paths:
        last_relevant: dict[str, str] = {}
        for location, row in read_records(path):
            try:
                prediction = parse_prediction(
                    row, default_id=f"{Path(path).name}#{location.split()[-1]}", item=_item_of(row, last_relevant)
                )
            except DataError as error:
                raise error.located(source=str(path), record=location) from None
            if prediction.id in where:
                raise DataError(
                    f"duplicate id {prediction.id!r} (first at {where[prediction.id]})",
                    source=str(path),
                    record=location,
                    field="id",
                )
            where[prediction.id] = f"{path}: {location}"
            predictions.append(prediction)
    if not predictions:
        raise DataError("no predictions", source=", ".join(str(p) for p in paths))
    return predictions


def meta_path(out: Path) -> Path:
    """Where `rarft-eval infer` records the settings of the run that wrote the prediction file `out`."""
    return Path(out).with_name(Path(out).name + ".meta.json")


def coerce_predictions(predictions: str | Path | Iterable[Prediction | dict[str, JsonValue]]) -> list[Prediction]:
    """A path (or paths), `Prediction`s or prediction dicts, as validated `Prediction`s."""
    if isinstance(predictions, (str, Path)):
        return load_predictions(predictions)
    rows = list(predictions)
    if rows and all(isinstance(r, (str, Path)) for r in rows):
        return load_predictions(rows)
    out = []
    last_relevant: dict[str, str] = {}
    for index, row in enumerate(rows):
        try:
            out.append(
                row
                if isinstance(row, Prediction)
                else parse_prediction(row, default_id=f"#{index}", item=_item_of(row, last_relevant))
            )
        except DataError as error:
            raise error.located(source="<predictions>", record=index) from None
    if not out:
        raise DataError("no predictions", source="<predictions>")
    return out


def defect_counts(predictions: Sequence[Prediction]) -> dict[str, int]:
    """How many rows have each defect (empty when none)."""
    return dict(Counter(defect for p in predictions for defect in p.defects))


def join_data(predictions: Sequence[Prediction], examples: Sequence[Example]) -> tuple[list[Prediction], dict]:
    """Predictions matched with the queries of their evaluation file, and what the match found.

    Rows with ids match by id. Rows without (the released inference's output) match by video file
    name, query and relevance, each query of the file used once; a matched row takes the query's
    item and, where it has none, its hardness level (the released inference writes
    `irrelevance_level`, often ""). Returns the predictions and {"missing_predictions": keys of
    queries without a row, "unmatched_rows": rows of no query, "gt_timestamp_differs": rows whose
    gt_timestamp is not the file's span of their query}. Raises DataError when nothing matches.
    """
    by_key = {e.key: e for e in examples}
    free: dict[tuple, list[Example]] = defaultdict(list)
    for example in examples:
        free[_match_key(example.item.video, example.label.query, example.label.relevant)].append(example)
    used: set[str] = set()
    joined, unmatched, differs = [], [], []
    for prediction in predictions:
        example = by_key.get(prediction.id) if prediction.has_id else None
        if not prediction.has_id:
            candidates = free.get(_match_key(prediction.video, prediction.query, prediction.gt_relevant))
            example = candidates.pop(0) if candidates else None
            if example is not None:
                prediction = replace(
                    prediction,
                    item=str(example.item.index),
                    hardness_level=prediction.hardness_level or example.label.difficulty,
                )
        if example is None or example.key in used:
            unmatched.append(prediction.id)
        else:
            used.add(example.key)
            if prediction.gt_relevant and prediction.gt_timestamp != example.label.timestamp:
                differs.append(prediction.id)
        joined.append(prediction)
    if not used:
        sample = next(iter(by_key), None)
        raise DataError(
            f"no prediction matches a query of the data file (rows look like {predictions[0].id!r}, "
            f"queries like {sample!r}); pass the evaluation file the predictions were made from"
        )
    return joined, {
        "missing_predictions": [e.key for e in examples if e.key not in used],
        "unmatched_rows": unmatched,
        "gt_timestamp_differs": differs,
    }


def _match_key(video: str, query: str, relevant: bool) -> tuple[str, str, bool]:
    return Path(video).name, " ".join(query.lower().split()), relevant
