"""Released-schema files (`rarft_plugin.schema`: `VtgItem`) and the labelled examples they hold.

A file is a JSON list of items (as `hi_vtg_charades.json`, `ss_vtg_charades.json`,
`human_anno.json`); `load_items` reads one, `dump_items` writes one (every builder writes
through it, so every file has one format).

Each entry of `GRPO` is one query about the item's video: `r` says whether it is relevant.
`examples_from_items` turns every entry into one `Example` whose label follows
`rarft_plugin.schema.Label`:

- relevant entry: timestamp = the item's `timestamp`; a_time = its answer (or "S to E");
  a_refusal = the answer of an irrelevant entry of the same item, if any (the explain
  reward's negative).
- irrelevant entry: a_refusal = its answer; a_time and q_r = the item's relevant entry.

Every released file loads as it is; its defects are kept, counted in the `LoadReport` and
handled as follows (one odd record never refuses a whole file):

- Charades-STA spans that end after the video's `duration` (166 items of `hi_vtg_charades.json`)
  are kept as annotated, as every published evaluation does (`spans_beyond_duration`; a clip's
  span is checked against its window, `rarft_plugin.schema.clip_length`).
- `duration: null` (every record of HI-TVGBench and SS-QVHighlights): the label's duration is
  None; the evaluation does not need it, and `rarft-eval infer` measures the video it decodes.
- A category outside the taxonomy (`Action/SceneTransition`, a mislabelled
  `Scene/SceneTransition`, on one record): the query is kept, the string is left out of its
  categories (so of per-category accuracy and of RT-IoU's ground truth) and counted in
  `unknown_categories`.
- Extra keys (`class`) are not read, and kept: `dump_items` writes them back; irrelevant answers
  without an `<answer>` wrapper are read as they are; category lists may be empty.
- `ss_vtg_charades.json`: items with two relevant queries carry one item-level timestamp, which
  belongs to `query_text` (582 second queries have no span of their own). With
  `unknown_span="skip"` (default) the other query's span is recovered from an item, of this file
  or of the `spans_from` files, with the same video (by file name) whose `query_text` is that
  query (`recovered_spans`: 189 from `hi_vtg_charades.json`); when none exists the example is
  left out (`unknown_spans`). `unknown_span="error"` raises instead. `unknown_span="item"` is the
  released inference's behaviour, for exact reproduction: every relevant query gets the item's
  timestamp, right or not (`assumed_spans`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_atomic
from rarft_plugin.schema import (
    JsonValue,
    Label,
    VtgItem,
    VtgQuery,
    clip_length,
    dump_item,
    format_span,
    parse_item,
    parse_label,
)

__all__ = [
    "UNKNOWN_SPAN_CHOICES",
    "Example",
    "LoadReport",
    "UnknownSpan",
    "dump_items",
    "examples_from_items",
    "load_examples",
    "load_items",
]


@dataclass(frozen=True)
class Example:
    """One query of one item, labelled. `query_index` is the position in the item's GRPO list."""

    item: VtgItem
    query_index: int
    label: Label

    @property
    def key(self) -> str:
        return f"{self.item.index}:{self.query_index}"


UnknownSpan = Literal["skip", "error", "item"]
UNKNOWN_SPAN_CHOICES = ("skip", "error", "item")


@dataclass
class LoadReport:
    """What a load found besides the examples: the data defects, by example key (module docstring)."""

    source: str
    recovered_spans: list[str] = field(default_factory=list)
    assumed_spans: list[str] = field(default_factory=list)
    unknown_spans: list[str] = field(default_factory=list)
    spans_beyond_duration: list[str] = field(default_factory=list)
    unknown_categories: list[str] = field(default_factory=list)  # "KEY: category"
    missing_durations: int = 0

    def summary(self) -> str:
        """One line: the defects found, those with a count of zero left out."""
        counts = (
            (len(self.recovered_spans), "relevant query span(s) recovered from other items"),
            (len(self.assumed_spans), "assumed to be the item's timestamp (released inference)"),
            (len(self.unknown_spans), "relevant query span(s) unknown (left out)"),
            (len(self.spans_beyond_duration), "span(s) ending after the video's duration (kept as annotated)"),
            (len(self.unknown_categories), "category entr(ies) outside the taxonomy (left out of the categories)"),
            (self.missing_durations, "item(s) without a duration"),
        )
        found = [f"{count} {what}" for count, what in counts if count]
        return f"{self.source}: {', '.join(found) if found else 'no data defect found'}"


def load_items(path: str | Path) -> list[VtgItem]:
    """Read and validate a released-schema file. Raises `DataError` naming file, record, field."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise DataError("file not found", source=source) from None
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", source=source) from None
    if not isinstance(raw, list):
        raise DataError(f"expected a JSON list of items, got {type(raw).__name__}", source=source)
    items = []
    for index, record in enumerate(raw):
        try:
            items.append(parse_item(record, index))
        except DataError as error:
            raise error.located(source=source, record=index) from None
    return items


def examples_from_items(
    items: Iterable[VtgItem],
    *,
    source: str = "<items>",
    unknown_span: UnknownSpan = "skip",
    spans_from: Sequence[VtgItem] = (),
) -> tuple[list[Example], LoadReport]:
    """One labelled `Example` per query of every item (see the module docstring).

    `spans_from`: items of other released files that may hold the span of a relevant query this
    file lacks (their `query_text` and `timestamp`).
    """
    if unknown_span not in UNKNOWN_SPAN_CHOICES:
        raise ValueError(f"unknown_span must be one of {UNKNOWN_SPAN_CHOICES}, got {unknown_span!r}")
    items = list(items)
    report = LoadReport(source=source, missing_durations=sum(item.duration is None for item in items))
    spans_by_query = _item_spans([*items, *spans_from])
    examples = []
    for item in items:
        relevant_entries = [q for q in item.queries if q.relevant]
        irrelevant_entries = [q for q in item.queries if not q.relevant]
        a_refusal = irrelevant_entries[0].answer_text if irrelevant_entries else ""
        first_relevant = relevant_entries[0] if relevant_entries else None
        for position, entry in enumerate(item.queries):
            key = f"{item.index}:{position}"
            report.unknown_categories.extend(f"{key}: {category}" for category in entry.unknown_categories)
            if entry.relevant:
                span = item.timestamp if unknown_span == "item" else _span_of(item, entry, spans_by_query)
                if span is None:
                    if unknown_span == "error":
                        raise DataError(
                            f"the span of relevant query {entry.query!r} is not in the file",
                            source=source,
                            record=item.index,
                            field=f"GRPO[{position}]",
                        )
                    report.unknown_spans.append(key)
                    continue
                if span is not item.timestamp:
                    report.recovered_spans.append(key)
                elif not _owns_timestamp(item, entry):
                    report.assumed_spans.append(key)
                length = clip_length(item.duration, item.video_start, item.video_end)
                if length is not None and span[1] > length:
                    report.spans_beyond_duration.append(key)
                label = {
                    "relevant": True,
                    "timestamp": list(span),
                    "answer_time": entry.answer_text or format_span(span),
                    "answer_refusal": a_refusal,
                    "query_relevant": entry.query.strip(),
                }
            else:
                label = {
                    "relevant": False,
                    "timestamp": None,
                    "answer_time": _relevant_answer(item, first_relevant),
                    "answer_refusal": entry.answer_text,
                    "query_relevant": entry.correction or (first_relevant.query.strip() if first_relevant else ""),
                    "categories": list(entry.taxonomy_categories),
                }
            label.update(duration=item.duration, query=entry.query.strip(), difficulty=entry.difficulty, id=key)
            label = parse_label(label, source=source, record=item.index)
            examples.append(Example(item=item, query_index=position, label=label))
    return examples, report


def dump_items(path: str | Path, items: Iterable[VtgItem]) -> None:
    """Write items as a released-schema file (`rarft_plugin.schema.dump_item`), atomically: the one
    writer of every builder, so every file we write has the same layout."""
    records: list[JsonValue] = [dump_item(item) for item in items]
    write_atomic(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")


def load_examples(
    path: str | Path, *, unknown_span: UnknownSpan = "skip", spans_from: Sequence[str | Path] = ()
) -> tuple[list[Example], LoadReport]:
    """`load_items` + `examples_from_items` for one file; `spans_from`: other released files to
    recover relevant-query spans from (see the module docstring)."""
    other_items = [item for other in spans_from for item in load_items(other)]
    return examples_from_items(load_items(path), source=str(path), unknown_span=unknown_span, spans_from=other_items)


def _relevant_answer(item: VtgItem, relevant: VtgQuery | None) -> str:
    if relevant is not None and relevant.answer_text:
        return relevant.answer_text
    return format_span(item.timestamp) if item.timestamp is not None else ""


def _item_spans(items: list[VtgItem]) -> dict[tuple[str, str], tuple[float, float]]:
    """(video file name, query_text) -> timestamp; by file name because the released files carry the
    authors' absolute paths, which need not agree between files."""
    spans = {}
    for item in items:
        if item.timestamp is not None:
            spans.setdefault((Path(item.video).name, _normal(item.query_text)), item.timestamp)
    return spans


def _owns_timestamp(item: VtgItem, entry: VtgQuery) -> bool:
    """The item timestamp belongs to `query_text`, or to a lone relevant query."""
    return sum(q.relevant for q in item.queries) == 1 or _normal(entry.query) == _normal(item.query_text)


def _span_of(item: VtgItem, entry: VtgQuery, spans: dict) -> tuple[float, float] | None:
    """The item's timestamp where it is the entry's own; else looked up by video and query."""
    if _owns_timestamp(item, entry):
        return item.timestamp
    return spans.get((Path(item.video).name, _normal(entry.query)))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
