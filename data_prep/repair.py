"""`rarft-prep repair-tvgbench`: restore the spans of HI-TVGBench items that were clips of longer videos.

TVGBench (Time-R1) asks about clips: a record holds a window `video_start`/`video_end` of its
video and a span [s, e] relative to that window. The released HI-TVGBench file lost the windows
(`video_start`/`video_end` are null) and stores [video_start + s, video_end + e] as the span, which
fits neither the clip nor the whole video (a third of the file). This command joins each item
with Time-R1's TVGBench annotation (its `tvgbench.json`, fields `path` / `question` / `answer`, read
by `rarft-prep`'s `tvgbench` importer: `data_prep.importers.TVGBENCH_FIELDS`) on the video's file
name and the relevant query, and for each item of a clip:

| stored span                        | what it does                                     | counted as        |
|------------------------------------|--------------------------------------------------|-------------------|
| [vs + s, ve + e] (the defect)      | span [s, e], window [vs, ve]; the relevant answer text too | `repaired` |
| [s, e] without a window            | window [vs, ve]                                  | `window_restored` |
| [vs + s, vs + e], or window set    | nothing: already consistent                      | `consistent`      |
| anything else                      | nothing; listed                                  | `mismatched`      |

Items whose video and query are not a clip of the annotation are left as they are (`not_clips`;
`unmatched` when the annotation lacks them, `ambiguous` when it holds several windows). The
output is written atomically; a file of which no item joins the annotation is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rarft_plugin.command_files import CommandFiles
from rarft_plugin.dataset import dump_items, load_items
from rarft_plugin.errors import DataError
from rarft_plugin.parsing import extract_segment
from rarft_plugin.schema import VtgItem, VtgQuery, format_span, wrap_answer

from .importers import QueryRecord, import_tvgbench

__all__ = [
    "TOLERANCE_S",
    "RepairReport",
    "add_arguments",
    "command_files",
    "repair_spans",
    "run",
]

TOLERANCE_S = 0.05  # the files round to 2 decimals or fewer
_ANSWER_BLOCK = re.compile(r"<answer>.*?</answer>", re.DOTALL)


@dataclass
class RepairReport:
    """Item indices by outcome (module docstring)."""

    repaired: list[int] = field(default_factory=list)
    window_restored: list[int] = field(default_factory=list)
    consistent: list[int] = field(default_factory=list)
    mismatched: list[int] = field(default_factory=list)
    not_clips: list[int] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)
    ambiguous: list[int] = field(default_factory=list)
    answers_rewritten: int = 0

    @property
    def changed(self) -> int:
        return len(self.repaired) + len(self.window_restored)

    def summary(self) -> str:
        joined = sum(
            len(group)
            for group in (self.repaired, self.window_restored, self.consistent, self.mismatched, self.not_clips)
        )
        listed = f" (first: {self.mismatched[:10]})" if self.mismatched else ""
        return (
            f"{self.changed} item(s) changed: {len(self.repaired)} span(s) repaired to [s, e] with their clip "
            f"window ({self.answers_rewritten} relevant answer text(s) rewritten), {len(self.window_restored)} "
            f"clip window(s) restored; {len(self.consistent)} clip(s) already consistent; "
            f"{len(self.mismatched)} clip(s) whose stored span fits neither reading, left as is{listed}; "
            f"{len(self.not_clips)} whole-video item(s); {joined} joined with the annotation, "
            f"{len(self.unmatched)} not in it, {len(self.ambiguous)} ambiguous there"
        )


def _key(video: str, query: str) -> tuple[str, str]:
    return Path(video).name, " ".join(query.lower().split())


def _close(a, b) -> bool:
    return all(abs(x - y) <= TOLERANCE_S for x, y in zip(a, b, strict=True))


def repair_spans(items: Sequence[VtgItem], annotation: list[QueryRecord]) -> tuple[list[VtgItem], RepairReport]:
    """The items with their clip spans repaired (see the module docstring), and what was done."""
    records: dict[tuple[str, str], list[QueryRecord]] = defaultdict(list)
    for record in annotation:
        records[_key(record.video, record.query)].append(record)
    repaired, report = list(items), RepairReport()
    for index, item in enumerate(items):
        found = {(r.timestamp, r.video_start, r.video_end) for r in records.get(_key(item.video, item.query_text), [])}
        if not found:
            report.unmatched.append(index)
            continue
        if len(found) > 1:
            report.ambiguous.append(index)
            continue
        (s, e), start, end = found.pop()
        if start is None and end is None:
            report.not_clips.append(index)
            continue
        start, end = start or 0.0, end
        stored = item.timestamp
        if item.video_start is not None or item.video_end is not None:
            report.consistent.append(index)
        elif stored is not None and end is not None and _close(stored, (start + s, end + e)):
            queries, rewritten = _rewrite_answers(item.queries, stored, (s, e))
            repaired[index] = dataclasses.replace(
                item, timestamp=(s, e), video_start=start, video_end=end, queries=queries
            )
            report.answers_rewritten += rewritten
            report.repaired.append(index)
        elif stored is not None and _close(stored, (s, e)):
            repaired[index] = dataclasses.replace(item, video_start=start, video_end=end)
            report.window_restored.append(index)
        elif stored is not None and _close(stored, (start + s, start + e)):
            report.consistent.append(index)
        else:
            report.mismatched.append(index)
    return repaired, report


def _rewrite_answers(
    queries: tuple[VtgQuery, ...], old: tuple[float, float], new: tuple[float, float]
) -> tuple[tuple[VtgQuery, ...], int]:
    """The queries, each relevant answer that states the old span stating the new one; and how many."""
    out, rewritten = [], 0
    for query in queries:
        segment = extract_segment(query.answer_text) if query.relevant else None
        if segment is not None and _close(segment, old):
            text = format_span(new)
            answer = (
                _ANSWER_BLOCK.sub(wrap_answer(text), query.answer, count=1)
                if _ANSWER_BLOCK.search(query.answer)
                else text
            )
            query = dataclasses.replace(query, answer=answer)
            rewritten += 1
        out.append(query)
    return tuple(out), rewritten


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="the released HI-TVGBench file (released schema)")
    parser.add_argument(
        "--tvgbench",
        type=Path,
        required=True,
        help="Time-R1's TVGBench annotation, its tvgbench.json (JSON list of {path, question, answer, duration, "
        "video_start, video_end}; video / query / timestamp accepted too: data_prep.importers.TVGBENCH_FIELDS)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the repaired file")


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(inputs=[args.input, args.tvgbench], outputs=[args.out])


def run(args: argparse.Namespace) -> int:
    try:
        items = load_items(args.input)  # the file must load as it is, naming a bad record
        annotation = import_tvgbench(args.tvgbench)
        # an importer may hand back an unusable record as its error rather than raise
        usable = [record for record in annotation if isinstance(record, QueryRecord)]
        unusable = [str(record) for record in annotation if not isinstance(record, QueryRecord)]
        repaired, report = repair_spans(items, usable)
        if len(report.unmatched) == len(items):
            reasons = f" ({len(unusable)} annotation record(s) unusable, first: {unusable[0]})" if unusable else ""
            raise DataError(
                f"no item joins the TVGBench annotation {args.tvgbench} (by video file name and query){reasons}",
                source=str(args.input),
            )
    except DataError as error:
        print(f"rarft-prep repair-tvgbench: error: {error}", file=sys.stderr)
        return 2
    dump_items(args.out, repaired)
    print(f"{args.input}: {report.summary()} -> {args.out}")
    if unusable:
        print(f"{len(unusable)} annotation record(s) unusable, left out (first: {unusable[0]})")
    return 0
