"""`rarft-prep split`: seeded train / evaluation splits of an HI-VTG file, by video.

Training items keep 1 relevant : 3 irrelevant queries (strong, moderate, weak; the paper's
training set); evaluation items keep 1 relevant : 1 irrelevant, the level drawn per item so the
three levels stay balanced. Items are split by video, so no video is in both. Items lacking a
level the training set needs are counted in the summary, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

from rarft_plugin.dataset import load_items
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_atomic

LEVELS = ("hard", "medium", "easy")


def _level(entry: dict) -> str | None:
    return entry.get("difficulty") if not entry["r"] else None


def split_items(raw: list[dict], *, eval_fraction: float, seed: int) -> tuple[list[dict], list[dict], Counter]:
    rng = random.Random(seed)
    videos = sorted({item["video"] for item in raw})
    rng.shuffle(videos)
    eval_videos = set(videos[: round(len(videos) * eval_fraction)])
    train, evaluation, notes = [], [], Counter()
    for index, item in enumerate(raw):
        relevant = [e for e in item["GRPO"] if e["r"]]
        by_level = {_level(e): e for e in item["GRPO"] if not e["r"] and _level(e) in LEVELS}
        if not relevant or not by_level:
            notes["items without a relevant and a hard-irrelevant query"] += 1
            continue
        if item["video"] in eval_videos:
            level = LEVELS[index % 3] if LEVELS[index % 3] in by_level else rng.choice(sorted(by_level))
            evaluation.append({**item, "GRPO": [relevant[0], by_level[level]]})
            notes[f"eval {level}"] += 1
        elif all(level in by_level for level in LEVELS):
            train.append({**item, "GRPO": [relevant[0], *(by_level[level] for level in LEVELS)]})
        else:
            notes["train items missing a level (not used)"] += 1
    return train, evaluation, notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="HI-VTG file (released schema)")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--eval-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    try:
        load_items(args.input)  # validates the file, naming the bad record
        raw = json.loads(args.input.read_text(encoding="utf-8"))
    except DataError as error:
        print(f"rarft-prep split: error: {error}", file=sys.stderr)
        return 2
    train, evaluation, notes = split_items(raw, eval_fraction=args.eval_fraction, seed=args.seed)
    write_atomic(args.train, json.dumps(train, ensure_ascii=False, indent=1) + "\n")
    write_atomic(args.eval, json.dumps(evaluation, ensure_ascii=False, indent=1) + "\n")
    print(f"train: {len(train)} items (1:3) -> {args.train}; eval: {len(evaluation)} items (1:1) -> {args.eval}")
    for note, count in sorted(notes.items()):
        print(f"  {count:6d}  {note}")
    return 0
