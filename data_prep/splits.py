"""`rarft-prep split`: seeded train / evaluation splits of a released-schema file, by video.

    rarft-prep split hi_vtg.json --train train.json --eval eval.json [--eval-fraction 0.2] [--seed 0]

Items are split by video, so no video is on both sides, and stratified by what a video offers
(relevant queries, irrelevant queries, or both), so each side keeps the file's mix. Each side
gets at least one video; a file of one video, or a side left with no usable item, is an error
and nothing is written.

- A **training item** keeps every query of the item. A file built by `rarft-prep hi-vtg` gives
  1 relevant : up to 3 irrelevant queries (strong, moderate, weak), the pool the paper draws its
  refusable example from; the released evaluation files (`eval/benchmarks/`) hold 1 relevant + 1
  irrelevant query of one level per item, so their training items are 1 : 1; SS-VTG files hold
  items of relevant or irrelevant queries only. `rarft-prep to-openrlhf --ratio 1:3` sets the
  relevant : irrelevant mix of the prompts (the paper trains at 1:3).
- An **evaluation item** keeps 1 relevant + 1 irrelevant query (the paper's 1:1), the irrelevant
  level chosen per item so the levels stay balanced; an item with queries of one class only keeps
  one query of it. A relevant query whose span is not in the file (an SS-VTG defect) is never the
  evaluation item's relevant query.

An item is usable when it has at least one query with a known label. The summary gives each
side's items, videos and relevant / irrelevant queries by level, and warns when a side has no
query of one class.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rarft_plugin.arguments import open_fraction
from rarft_plugin.command_files import CommandFiles
from rarft_plugin.dataset import examples_from_items, items_text, items_videos_hold, left_out_line, load_items
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_files_atomic
from rarft_plugin.schema import IRRELEVANCE_LEVELS, VtgItem

__all__ = [
    "ItemQueries",
    "add_arguments",
    "command_files",
    "eval_videos",
    "item_queries",
    "run",
    "side_summary",
    "split_items",
]


@dataclass(frozen=True)
class ItemQueries:
    """The usable queries of one item: positions of relevant ones with a known span, irrelevant ones by level."""

    relevant: tuple[int, ...]
    irrelevant: tuple[tuple[int, str | None], ...]

    @property
    def usable(self) -> bool:
        return bool(self.relevant or self.irrelevant)


def item_queries(items: Sequence[VtgItem]) -> list[ItemQueries]:
    """Per item, its usable queries (positions in its GRPO list)."""
    examples, _ = examples_from_items(items)  # relevant queries without a known span are left out here
    relevant, irrelevant = defaultdict(list), defaultdict(list)
    for example in examples:
        if example.label.relevant:
            relevant[example.item.index].append(example.query_index)
        else:
            irrelevant[example.item.index].append((example.query_index, example.label.difficulty))
    return [ItemQueries(tuple(relevant[item.index]), tuple(irrelevant[item.index])) for item in items]


def eval_videos(strata: dict[str, set[str]], videos: list[str], eval_fraction: float, seed: int) -> set[str]:
    """The evaluation side's videos: the fraction of each stratum (seeded), at least one, never all."""
    rng = random.Random(seed)
    chosen: set[str] = set()
    for key in sorted(strata):
        members = sorted(strata[key])
        rng.shuffle(members)
        chosen.update(members[: math.floor(len(members) * eval_fraction + 0.5)])
    order = sorted(videos)
    rng.shuffle(order)
    if not chosen:  # small files: one video to evaluation, preferring one whose loss leaves training both classes
        chosen.add(min(order, key=lambda video: (_classes(strata, set(videos) - {video}) != 2, order.index(video))))
    if len(chosen) == len(videos):
        chosen.discard(min(order, key=lambda video: (_classes(strata, {video}) != 2, order.index(video))))
    return chosen


def _classes(strata: dict[str, set[str]], videos: set[str]) -> int:
    """How many query classes (relevant, irrelevant) the videos offer together."""
    offered = {cls for key, members in strata.items() if members & videos for cls in key.split("+")}
    return len(offered)


def split_items(
    items: Sequence[VtgItem], *, eval_fraction: float, seed: int
) -> tuple[list[VtgItem], list[VtgItem], dict]:
    """(training items, evaluation items, summary counts) of a file's items."""
    queries = item_queries(items)
    offered: dict[str, set[str]] = defaultdict(set)
    for item, found in zip(items, queries, strict=True):
        if found.relevant:
            offered[item.video].add("relevant")
        if found.irrelevant:
            offered[item.video].add("irrelevant")
    usable_videos = sorted(offered)
    if len(usable_videos) < 2:
        raise DataError(f"a split needs usable items of at least two videos, found {len(usable_videos)}")
    strata: dict[str, set[str]] = defaultdict(set)
    for video, classes in offered.items():
        strata["+".join(sorted(classes))].add(video)
    evaluation_side = eval_videos(strata, usable_videos, eval_fraction, seed)

    train, evaluation = [], []
    counts = {"train": Counter(), "eval": Counter(), "unusable": 0}
    level_use: Counter = Counter()
    for item, found in zip(items, queries, strict=True):
        if not found.usable:
            counts["unusable"] += 1
            continue
        if item.video not in evaluation_side:
            train.append(item)
            _count(counts["train"], found.relevant, found.irrelevant)
            continue
        picked_relevant = found.relevant[:1]
        picked_irrelevant = ()
        if found.irrelevant:
            # the level used least so far among the item's, so the evaluation side stays balanced
            picked_irrelevant = (min(found.irrelevant, key=lambda q: (level_use[q[1]], _level_rank(q[1]))),)
            level_use[picked_irrelevant[0][1]] += 1
        positions = [*picked_relevant, *(position for position, _ in picked_irrelevant)]
        evaluation.append(dataclasses.replace(item, queries=tuple(item.queries[p] for p in sorted(positions))))
        _count(counts["eval"], picked_relevant, picked_irrelevant)
    counts["train"]["videos"] = len(set(usable_videos) - evaluation_side)
    counts["eval"]["videos"] = len(evaluation_side)
    return train, evaluation, counts


def _level_rank(level: str | None) -> int:
    """Ties between levels go to the harder one; an unlabelled query comes last."""
    return IRRELEVANCE_LEVELS.index(level) if level in IRRELEVANCE_LEVELS else len(IRRELEVANCE_LEVELS)


def _count(counter: Counter, relevant, irrelevant) -> None:
    counter["items"] += 1
    counter["relevant"] += len(relevant)
    for _, level in irrelevant:
        counter[f"irrelevant {level or 'unlabelled'}"] += 1


def side_summary(name: str, path: Path, counter: Counter) -> list[str]:
    irrelevant = {
        key.removeprefix("irrelevant "): count for key, count in counter.items() if key.startswith("irrelevant ")
    }
    levels = ", ".join(f"{level} {count}" for level, count in sorted(irrelevant.items()))
    lines = [
        f"{name}: {counter['items']} items of {counter['videos']} videos -> {path}: {counter['relevant']} "
        f"relevant, {sum(irrelevant.values())} irrelevant queries ({levels or 'none'})"
    ]
    if not counter["relevant"] or not irrelevant:
        lines.append(
            f"  warning: the {name} side has no {'relevant' if not counter['relevant'] else 'irrelevant'} "
            "query (the file offers too few to give each side both)"
        )
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="released-schema file (hi-vtg / ss-vtg output, or a released file)")
    parser.add_argument("--train", type=Path, required=True, help="training items to write (released schema)")
    parser.add_argument("--eval", type=Path, required=True, help="evaluation items to write (released schema, 1:1)")
    parser.add_argument(
        "--eval-fraction",
        type=open_fraction,
        default=0.2,
        help="share of the videos for evaluation, between 0 and 1 (default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the video assignment (same seed, same split)")


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(inputs=[args.input], outputs=[args.train, args.eval])


def run(args: argparse.Namespace) -> int:
    try:
        items = load_items(args.input)  # validates the file, naming the bad record
        items, impossible = items_videos_hold(items)  # kept out of both sides: the split files load anywhere
        train, evaluation, counts = split_items(items, eval_fraction=args.eval_fraction, seed=args.seed)
        for name, side in (("training", train), ("evaluation", evaluation)):
            if not side:
                raise DataError(f"the {name} side would be empty: no usable item of its videos")
    except DataError as error:
        error = error.located(source=str(args.input))
        print(f"rarft-prep split: error: {error}", file=sys.stderr)
        return 2
    write_files_atomic({args.train: items_text(train), args.eval: items_text(evaluation)})
    for line in [*side_summary("train", args.train, counts["train"]), *side_summary("eval", args.eval, counts["eval"])]:
        print(line)
    if counts["unusable"]:
        print(f"  {counts['unusable']} items without a usable query (not used)")
    if impossible:
        print(left_out_line(impossible))
    return 0
