"""The label schema: the one home of what a training / evaluation example's ground truth holds.

A label is a JSON object (or its JSON string, as OpenRLHF passes it):

| field            | type            | required | meaning                                                       |
|------------------|-----------------|----------|---------------------------------------------------------------|
| `relevant`       | bool            | yes      | the query has a segment in the video                          |
| `timestamp`      | [start, end] s  | relevant | ground-truth segment; `null` / `[]` / absent when irrelevant  |
| `duration`       | s, > 0, or null | no (null)| video (or clip) length, seconds; null where the file lacks it |
| `query`          | str, non-empty  | yes      | the query asked                                               |
| `answer_time`    | str             | no ("")  | a_time, the time-aware answer text ("9.3 to 14.4")            |
| `answer_refusal` | str             | no ("")  | a_refusal, the refusal explanation                            |
| `query_relevant` | str             | no ("")  | q_r, the relevant query the correction should reconstruct     |
| `difficulty`     | str or null     | no       | original / strong / moderate / weak / shuffled (aliases ok)   |
| `categories`     | list[str]       | no ([])  | edited semantic categories, "Parent/Child" paths              |
| `id`             | str or int      | no       | free identifier carried through to logs                       |

Answer texts may carry their `<answer>...</answer>` / `<correct>...</correct>` wrapping as in the
released files; it is removed here, so rewards compare plain texts. An empty reference text makes
the reward that needs it 0 (SS-VTG has no refusal answers).

`duration` may be unknown (`null` on every record of HI-TVGBench and SS-QVHighlights): the
evaluation metrics do not need it, and whoever does (the released-variant reward's distance
penalty) takes it from the video or asks for it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from rarft_plugin.errors import DataError
from rarft_plugin.taxonomy import CATEGORIES, normalize_difficulty

_WRAPPER = re.compile(r"^\s*<(answer|correct|correction)>(.*?)</\1>", re.DOTALL)
_TAG_MARKUP = re.compile(r"</?(?:think|answer|correct|correction)>")

FIELDS = (
    "relevant",
    "timestamp",
    "duration",
    "query",
    "answer_time",
    "answer_refusal",
    "query_relevant",
    "difficulty",
    "categories",
    "id",
)


@dataclass(frozen=True)
class Label:
    """A validated label. Build it with `parse_label`."""

    relevant: bool
    duration: float | None
    query: str
    timestamp: tuple[float, float] | None = None
    answer_time: str = ""
    answer_refusal: str = ""
    query_relevant: str = ""
    difficulty: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)
    id: str | int | None = None

    def to_json(self) -> dict[str, Any]:
        """The label as a plain JSON object (round-trips through `parse_label`)."""
        out = asdict(self)
        out["timestamp"] = list(self.timestamp) if self.timestamp is not None else None
        out["categories"] = list(self.categories)
        return out


def strip_answer_wrapper(text: str) -> str:
    """Remove a leading `<answer>...</answer>` (or `<correct>`) wrapper as the released files store it.

    >>> strip_answer_wrapper("<answer>9.3 to 14.4</answer>")
    '9.3 to 14.4'
    """
    match = _WRAPPER.match(text)
    return match.group(2).strip() if match else text.strip()


def strip_tags(text: str) -> str:
    """A reference answer with its tag markup removed and whitespace collapsed, contents kept: how the
    released evaluation's SBERT score reads `gt_output` (llm_evaluator.py:492-499).

    >>> strip_tags("<answer>He sits.</answer><correct>a man runs</correct>")
    'He sits. a man runs'
    """
    return " ".join(_TAG_MARKUP.sub(" ", text).split())


def query_difficulty(tag: Any, *, relevant: bool, categories: Sequence[str]) -> str | None:
    """The difficulty of a released-file query in the paper's vocabulary, or None when untagged.

    Aliases are mapped (hard / medium / easy); an irrelevant query tagged weak ("easy") with no
    edited category is simply shuffled (SS-VTG tags its shuffled queries "easy"; a weak
    hard-irrelevant query has three edited categories). Raises ValueError for an unknown tag or
    an irrelevant query tagged original.

    >>> query_difficulty("easy", relevant=False, categories=[]), query_difficulty("hard", relevant=False, categories=["x"])
    ('shuffled', 'strong')
    """
    if tag is None or (isinstance(tag, str) and not tag.strip()):
        return None
    if not isinstance(tag, str):
        raise ValueError(f"must be a string, got {tag!r}")
    difficulty = normalize_difficulty(tag)
    if not relevant and difficulty == "original":
        raise ValueError("an irrelevant query cannot be 'original'")
    if not relevant and not categories and difficulty == "weak":
        return "shuffled"
    return difficulty


def parse_label(raw: Mapping[str, Any] | str | Label, *, source: str | None = None, record: object = None) -> Label:
    """Validate a label (dict or JSON string) and return it as a `Label`.

    Raises `DataError` naming the field for anything missing or invalid.

    >>> parse_label({"relevant": True, "timestamp": [1, 2], "duration": 10, "query": "a man runs"}).timestamp
    (1.0, 2.0)
    """
    if isinstance(raw, Label):
        return raw
    try:
        return _parse_label(raw)
    except DataError as error:
        raise error.located(source=source, record=record) from None


def _parse_label(raw: Mapping[str, Any] | str) -> Label:
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise DataError(f"label is not valid JSON ({error})") from None
    if not isinstance(raw, Mapping):
        raise DataError(f"label must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise DataError(f"unknown label field(s) {unknown}; allowed: {list(FIELDS)}")

    relevant = _required(raw, "relevant")
    if not isinstance(relevant, bool):
        raise DataError(f"must be true or false, got {relevant!r}", field="relevant")
    duration = raw.get("duration")
    if duration is not None:
        duration = _number(duration, "duration")
        if duration <= 0:
            raise DataError(f"must be > 0, got {duration}", field="duration")
    query = _text(_required(raw, "query"), "query")
    if not query.strip():
        raise DataError("must not be empty", field="query")

    timestamp = _timestamp(raw.get("timestamp"))
    if relevant and timestamp is None:
        raise DataError("a relevant query needs [start, end]", field="timestamp")
    if not relevant and timestamp is not None:
        raise DataError("must be null or [] for an irrelevant query", field="timestamp")

    difficulty = raw.get("difficulty")
    if difficulty is not None:
        try:
            difficulty = normalize_difficulty(_text(difficulty, "difficulty"))
        except ValueError as error:
            raise DataError(str(error), field="difficulty") from None

    categories = raw.get("categories") or []
    if not isinstance(categories, list):
        raise DataError(f"must be a list of category paths, got {categories!r}", field="categories")
    for path in categories:
        if path not in CATEGORIES:
            raise DataError(f"unknown category {path!r}; expected one of {list(CATEGORIES)}", field="categories")

    label_id = raw.get("id")
    if label_id is not None and not isinstance(label_id, (str, int)):
        raise DataError(f"must be a string or integer, got {label_id!r}", field="id")

    return Label(
        relevant=relevant,
        duration=duration,
        query=query,
        timestamp=timestamp,
        answer_time=strip_answer_wrapper(_text(raw.get("answer_time") or "", "answer_time")),
        answer_refusal=strip_answer_wrapper(_text(raw.get("answer_refusal") or "", "answer_refusal")),
        query_relevant=strip_answer_wrapper(_text(raw.get("query_relevant") or "", "query_relevant")),
        difficulty=difficulty,
        categories=tuple(categories),
        id=label_id,
    )


def _required(raw: Mapping[str, Any], name: str) -> Any:
    if name not in raw or raw[name] is None:
        raise DataError("is missing", field=name)
    return raw[name]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {type(value).__name__}", field=name)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"must be a number, got {value!r}", field=name)
    value = float(value)
    if not math.isfinite(value):
        raise DataError(f"must be finite, got {value}", field=name)
    return value


def _timestamp(value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DataError(f"must be [start, end], got {value!r}", field="timestamp")
    start, end = (_number(v, "timestamp") for v in value)
    if start < 0 or end < start:
        raise DataError(f"must satisfy 0 <= start <= end, got {[start, end]}", field="timestamp")
    return (start, end)
