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

- Charades-STA spans that end after the video's `duration` (by more than the half second of
  rounding `rarft_plugin.schema.span_problem` allows: 149 items of `hi_vtg_charades.json`, 178 of
  `ss_vtg_charades.json`; 14 of the former start at or after its end) are kept as annotated, as every
  published evaluation does, counted (`spans_beyond_duration`) and named in the summary as the
  released file's known defect. Only the released files keep them (`RELEASED_FILES`, recognised
  by content): in any other file such a span is an error naming the record, as it is for the
  importers, the prompt rows and the rollouts (one rule, `span_problem`). `rarft-prep split`
  leaves such items out of both sides, with a count, so its outputs load anywhere.
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
from rarft_plugin.io_utils import file_sha256, read_json, write_atomic
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
    span_problem,
)

__all__ = [
    "RELEASED_FILES",
    "UNKNOWN_SPAN_CHOICES",
    "Example",
    "LoadReport",
    "UnknownSpan",
    "dump_items",
    "examples_from_items",
    "item_span_problem",
    "items_videos_hold",
    "left_out_line",
    "items_text",
    "load_examples",
    "load_items",
    "released_dataset",
]

# The released evaluation files (shipped in eval/benchmarks/), by the SHA-256 of their content -> the
# paper's dataset. Their known defects are kept (module docstring); a copy edited in any way is not one.
RELEASED_FILES = {
    "1569a4dd771ade97a0441a9b7fa967728325229480fc4f7b8d34de7b85c7069d": "HI-Charades",  # hi_vtg_charades.json
    "b98df9d63ee5e2884d60607edd4e4cca622c305a164ddf1405e0db5f05e20e16": "Human-Annotated",  # human_anno.json
    "d6650742f84dfaec9cf9401bd41d2e01066888259bf08a810464430b73e9596d": "SS-Charades",  # ss_vtg_charades.json
}


def released_dataset(path: str | Path) -> str | None:
    """The paper's dataset of a released file (recognised by content: `RELEASED_FILES`), else None."""
    return RELEASED_FILES.get(file_sha256(path))


def item_span_problem(item: VtgItem) -> str | None:
    """Why an item's timestamp cannot lie in its video (clip), or None (`rarft_plugin.schema.span_problem`)."""
    return span_problem(item.timestamp, clip_length(item.duration, item.video_start, item.video_end))


def items_videos_hold(items: Iterable[VtgItem]) -> tuple[list[VtgItem], list[VtgItem]]:
    """(the items whose span their video can hold, the others). Only a released file loads with the others
    (its known defect, `load_items`); a command writing items leaves them out, so that its output loads anywhere."""
    items = list(items)
    return [i for i in items if not item_span_problem(i)], [i for i in items if item_span_problem(i)]


def left_out_line(impossible: Sequence[VtgItem]) -> str:
    """The warning a command prints for the items `items_videos_hold` left out."""
    return (
        f"  warning: {len(impossible)} items left out: their span ends after the video's duration "
        f"(a known defect of the released file; first: record {impossible[0].index})"
    )


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
    """What a load found besides the examples: the data defects, by example key (module docstring).

    `released`: the paper's dataset when the file is a released one (`RELEASED_FILES`), whose known
    defects are kept.
    """

    source: str
    recovered_spans: list[str] = field(default_factory=list)
    assumed_spans: list[str] = field(default_factory=list)
    unknown_spans: list[str] = field(default_factory=list)
    spans_beyond_duration: list[str] = field(default_factory=list)
    unknown_categories: list[str] = field(default_factory=list)  # "KEY: category"
    missing_durations: int = 0
    released: str | None = None

    def summary(self) -> str:
        """One line of the defects found, those with a non-zero count only; "" when there are none.

        >>> LoadReport("a.json", missing_durations=2).summary(), LoadReport("b.json").summary()
        ('a.json: 2 item(s) without a duration', '')
        """
        known = f"a known defect of the released {self.released} file, " if self.released else ""
        counts = (
            (len(self.recovered_spans), "relevant query span(s) recovered from other items"),
            (len(self.assumed_spans), "assumed to be the item's timestamp (released inference)"),
            (len(self.unknown_spans), "relevant query span(s) unknown (left out)"),
            (
                len(self.spans_beyond_duration),
                f"span(s) ending after the video's duration ({known}kept as annotated: evaluate with "
                "them, never train on them)",
            ),
            (len(self.unknown_categories), "category entr(ies) outside the taxonomy (left out of the categories)"),
            (self.missing_durations, "item(s) without a duration"),
        )
        found = [f"{count} {what}" for count, what in counts if count]
        return f"{self.source}: {', '.join(found)}" if found else ""


def load_items(path: str | Path) -> list[VtgItem]:
    """Read and validate a released-schema file. Raises `DataError` naming file, record, field.

    A span that cannot lie in its video (`item_span_problem`) is an error, except in a released file
    (`released_dataset`), where it is the known defect `examples_from_items` counts.
    """
    source = str(path)
    raw = read_json(path)
    if not isinstance(raw, list):
        raise DataError(f"expected a JSON list of items, got {type(raw).__name__}", source=source)
    items = []
    for index, record in enumerate(raw):
        try:
            items.append(parse_item(record, index))
        except DataError as error:
            raise error.located(source=source, record=index) from None
    impossible = [(item.index, problem) for item in items if (problem := item_span_problem(item))]
    if impossible and released_dataset(path) is None:
        index, problem = impossible[0]
        more = f" ({len(impossible) - 1} more record(s) like it)" if len(impossible) > 1 else ""
        raise DataError(
            f"{problem}: a span the video cannot hold{more}", source=source, record=index, field="timestamp"
        )
    return items


def examples_from_items(
    items: Iterable[VtgItem],
    *,
    source: str = "<items>",
    unknown_span: UnknownSpan = "skip",
    spans_from: Sequence[VtgItem] = (),
    released: str | None = None,
) -> tuple[list[Example], LoadReport]:
    """One labelled `Example` per query of every item (see the module docstring).

    `spans_from`: items of other released files that may hold the span of a relevant query this
    file lacks (their `query_text` and `timestamp`). `released`: the paper's dataset when the items
    are a released file's (`released_dataset`), named with its known defects in the report.
    """
    if unknown_span not in UNKNOWN_SPAN_CHOICES:
        raise ValueError(f"unknown_span must be one of {UNKNOWN_SPAN_CHOICES}, got {unknown_span!r}")
    items = list(items)
    report = LoadReport(
        source=source, missing_durations=sum(item.duration is None for item in items), released=released
    )
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
                if span_problem(span, clip_length(item.duration, item.video_start, item.video_end)):
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


def items_text(items: Iterable[VtgItem]) -> str:
    """Items as the text of a released-schema file (`rarft_plugin.schema.dump_item`): the one layout of
    every file we write (`dump_items`, and builders writing several files at once)."""
    records: list[JsonValue] = [dump_item(item) for item in items]
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


def dump_items(path: str | Path, items: Iterable[VtgItem]) -> None:
    """Write items as a released-schema file (`items_text`), atomically."""
    write_atomic(path, items_text(items))


def load_examples(
    path: str | Path, *, unknown_span: UnknownSpan = "skip", spans_from: Sequence[str | Path] = ()
) -> tuple[list[Example], LoadReport]:
    """`load_items` + `examples_from_items` for one file; `spans_from`: other released files to
    recover relevant-query spans from (see the module docstring)."""
    other_items = [item for other in spans_from for item in load_items(other)]
    return examples_from_items(
        load_items(path),
        source=str(path),
        unknown_span=unknown_span,
        spans_from=other_items,
        released=released_dataset(path),
    )


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
