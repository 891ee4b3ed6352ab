"""Prediction files: one JSON object per query, in the released evaluation code's fields.

| field            | type              | meaning                                                    |
|------------------|-------------------|------------------------------------------------------------|
| `id`             | str               | "ITEM:QUERY" of the evaluation file                        |
| `video`, `query` | str               | what was asked                                             |
| `model_output`   | str               | the model's full response                                  |
| `gt_relevant`    | bool              | ground truth relevance                                     |
| `gt_timestamp`   | [s, e] or null    | ground-truth segment (relevant queries)                    |
| `gt_output`      | str               | reference answer: a_time (relevant) or a_refusal           |
| `gt_categories`  | list[str]         | edited semantic categories (irrelevant queries)            |
| `hardness_level` | str or null       | original / strong / moderate / weak / shuffled             |

Problems in these files are ours (a bad field is a `DataError` naming file, line and field);
problems in `model_output` are the model's and are scored, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rarft_plugin.dataset import Example
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_jsonl
from rarft_plugin.labels import parse_label

FIELDS = ("id", "video", "query", "model_output", "gt_relevant", "gt_timestamp", "gt_output", "gt_categories",
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

    @property
    def item(self) -> str:
        """The evaluation item (video record) the query belongs to."""
        return self.id.rsplit(":", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "video": self.video, "query": self.query, "model_output": self.model_output,
            "gt_relevant": self.gt_relevant, "gt_timestamp": list(self.gt_timestamp) if self.gt_timestamp else None,
            "gt_output": self.gt_output, "gt_categories": list(self.gt_categories), "hardness_level": self.hardness_level,
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


def parse_prediction(row: dict[str, Any]) -> Prediction:
    """Validate one row (raises DataError naming the field)."""
    missing = [name for name in FIELDS if name not in row]
    if missing:
        raise DataError(f"missing field(s) {missing}", field=missing[0])
    if not isinstance(row["model_output"], str):
        raise DataError(f"must be a string, got {type(row['model_output']).__name__}", field="model_output")
    for name in ("id", "video", "query", "gt_output"):
        if not isinstance(row[name], str):
            raise DataError("must be a string", field=name)
    # the label schema validates relevance / timestamp / categories / difficulty in one place
    label = parse_label({
        "relevant": row["gt_relevant"], "timestamp": row["gt_timestamp"], "duration": 1.0, "query": row["query"] or "?",
        "categories": row["gt_categories"], "difficulty": row["hardness_level"],
    })
    return Prediction(
        id=row["id"], video=row["video"], query=row["query"], model_output=row["model_output"],
        gt_relevant=label.relevant, gt_timestamp=label.timestamp, gt_output=row["gt_output"],
        gt_categories=label.categories, hardness_level=label.difficulty,
    )


def load_predictions(path: str | Path) -> list[Prediction]:
    predictions, seen = [], set()
    for number, row in read_jsonl(path):
        try:
            prediction = parse_prediction(row)
        except DataError as error:
            raise error.located(source=str(path), record=f"line {number}") from None
        if prediction.id in seen:
            raise DataError(f"duplicate id {prediction.id!r}", source=str(path), record=f"line {number}", field="id")
        seen.add(prediction.id)
        predictions.append(prediction)
    if not predictions:
        raise DataError("no predictions", source=str(path))
    return predictions


def write_predictions_rows(predictions: Iterable[Prediction]) -> list[dict[str, Any]]:
    return [p.to_json() for p in predictions]


