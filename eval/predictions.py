"""Prediction files: one JSON object per query, in the released evaluation code's fields.

| field            | type              | required | meaning                                                  |
|------------------|-------------------|----------|----------------------------------------------------------|
| `model_output`   | str               | yes      | the model's full response                                |
| `gt_relevant`    | bool              | yes      | ground-truth relevance                                   |
| `gt_timestamp`   | [s, e] or null    | yes      | ground-truth segment (relevant queries; null otherwise)  |
| `gt_output`      | str               | yes      | reference answer: a_time (relevant) or a_refusal ("" ok) |
| `gt_categories`  | list[str] or null | yes      | edited semantic categories (irrelevant queries)          |
| `hardness_level` | str or null       | yes      | original / strong / moderate / weak / shuffled (aliases) |
| `video`, `query` | str               | yes      | what was asked                                           |
| `id`             | str               | no       | "ITEM:QUERY" (`rarft-eval infer` writes it)              |

Other fields are carried through untouched. Without `id`, a row is named after its file and
line, and its item (which groups the queries about one video record for the hardness
breakdown) is its video.

Problems in these files are ours: a bad field is a `DataError` naming file, line and field.
Problems in `model_output` are the model's: they are scored, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from rarft_plugin.dataset import Example
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_jsonl
from rarft_plugin.labels import parse_label

REQUIRED = ("video", "query", "model_output", "gt_relevant", "gt_timestamp", "gt_output", "gt_categories",
            "hardness_level")


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

    def __post_init__(self):
        if not self.item:
            object.__setattr__(self, "item", self.id.rsplit(":", 1)[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "video": self.video, "query": self.query, "model_output": self.model_output,
            "gt_relevant": self.gt_relevant, "gt_timestamp": list(self.gt_timestamp) if self.gt_timestamp else None,
            "gt_output": self.gt_output, "gt_categories": list(self.gt_categories),
            "hardness_level": self.hardness_level,
        }


def prediction_from_example(example: Example, model_output: str) -> Prediction:
    """A prediction row for one labelled example of an evaluation file."""
    label = example.label
    return Prediction(
        id=example.key,
        video=example.item.video,
        query=label.query,
        model_output=model_output,
        gt_relevant=label.relevant,
        gt_timestamp=label.timestamp,
        gt_output=label.answer_time if label.relevant else label.answer_refusal,
        gt_categories=label.categories,
        hardness_level=label.difficulty,
    )


def parse_prediction(row: dict[str, Any], *, default_id: str = "") -> Prediction:
    """Validate one row (raises DataError naming the field). `default_id` names a row without `id`."""
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        raise DataError(f"missing field(s) {missing}; a prediction needs {list(REQUIRED)}", field=missing[0])
    for name in ("video", "query", "model_output", "gt_output"):
        if not isinstance(row[name], str):
            raise DataError(f"must be a string, got {type(row[name]).__name__}", field=name)
    has_id = row.get("id") is not None
    if has_id and not isinstance(row["id"], (str, int)):
        raise DataError(f"must be a string, got {type(row['id']).__name__}", field="id")
    if not has_id and not default_id:
        raise DataError("is missing", field="id")
    # the label schema validates relevance / timestamp / categories / difficulty in one place
    try:
        label = parse_label({
            "relevant": row["gt_relevant"], "timestamp": row["gt_timestamp"], "duration": 1.0, "query": row["query"],
            "categories": row["gt_categories"], "difficulty": row["hardness_level"],
        })
    except DataError as error:
        raise DataError(error.message, field=_PREDICTION_FIELD.get(error.field, error.field)) from None
    return Prediction(
        id=str(row["id"]) if has_id else default_id, video=row["video"], query=row["query"],
        model_output=row["model_output"], gt_relevant=label.relevant, gt_timestamp=label.timestamp,
        gt_output=row["gt_output"], gt_categories=label.categories, hardness_level=label.difficulty,
        item="" if has_id else row["video"],
    )


# label field -> prediction field, so errors name the field of the prediction file
_PREDICTION_FIELD = {"relevant": "gt_relevant", "timestamp": "gt_timestamp", "categories": "gt_categories",
                     "difficulty": "hardness_level"}


def load_predictions(paths: str | Path | Sequence[str | Path]) -> list[Prediction]:
    """Predictions of one file, or of several (the shards of one run). Ids must be unique across them."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    predictions: list[Prediction] = []
    where: dict[str, str] = {}
    for path in paths:
        for number, row in read_jsonl(path):
            location = f"line {number}"
            try:
                prediction = parse_prediction(row, default_id=f"{Path(path).name}#{number}")
            except DataError as error:
                raise error.located(source=str(path), record=location) from None
            if prediction.id in where:
                raise DataError(f"duplicate id {prediction.id!r} (first at {where[prediction.id]})", source=str(path),
                                record=location, field="id")
            where[prediction.id] = f"{path}: {location}"
            predictions.append(prediction)
    if not predictions:
        raise DataError("no predictions", source=", ".join(str(p) for p in paths))
    return predictions


def coerce_predictions(predictions: str | Path | Iterable[Prediction | dict[str, Any]]) -> list[Prediction]:
    """A path (or paths), `Prediction`s or prediction dicts, as validated `Prediction`s."""
    if isinstance(predictions, (str, Path)):
        return load_predictions(predictions)
    rows = list(predictions)
    if rows and all(isinstance(r, (str, Path)) for r in rows):
        return load_predictions(rows)
    out = []
    for index, row in enumerate(rows):
        try:
            out.append(row if isinstance(row, Prediction) else parse_prediction(row, default_id=f"#{index}"))
        except DataError as error:
            raise error.located(source="<predictions>", record=index) from None
    if not out:
        raise DataError("no predictions", source="<predictions>")
    return out
