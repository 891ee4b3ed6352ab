"""`rarft-prep debias`: make the irrelevant queries of a released-schema file hard to tell from the
relevant ones by their text alone, and the leakage check and substitute vocabulary of `hi-vtg`.

    rarft-prep debias IN --out OUT [--target-auc 0.55] [--min-keep 0.25] [--seed 0]

The query-only classifier of `rarft_plugin.leakage` (word and character n-grams, logistic
regression, 5 folds by video) measures how well the text gives an irrelevant query away
(out-of-fold AUC). `leakage.leak_filter` then drops, round by round on fresh folds, the irrelevant
queries it finds easiest until that AUC is at most `--target-auc`, keeping at least `--min-keep` of
each hardness level and every relevant query (each is its item's grounding example and the q_r of
its irrelevant queries). The AUC is measured again afterwards on folds no round used; the report
(printed, and written to OUT with `.debias.json`: before, after, kept per level, the rounds, the
command) says what was kept. Items keep every other field as read; an item loses only dropped
entries of its `GRPO` list. Items whose span their video cannot hold (a known defect of the
released files, which only those may carry: `rarft_plugin.dataset.load_items`) are left out before
anything is measured, as `rarft-prep split` leaves them out, so that the output loads anywhere; the
report counts them (`left_out`, item indices as read). When the target cannot be reached within the floors, nothing is
written and the command exits 1 (lower `--min-keep` or raise `--target-auc`).

For data built with `rarft-prep hi-vtg`, `--debias AUC` there runs the same filter before writing,
and `--substitutes` asks the LLM to take the words its edits bring in from the relevant queries'
own vocabulary (`substitute_vocabulary`), so that the edit leaves less of the LLM's vocabulary
behind in the first place.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rarft_plugin.arguments import open_fraction
from rarft_plugin.command_files import CommandFiles
from rarft_plugin.dataset import (
    Example,
    examples_from_items,
    items_text,
    items_videos_hold,
    left_out_line,
    load_items,
)
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_files_atomic
from rarft_plugin.leakage import LeakageReport, label_leakage, leak_filter
from rarft_plugin.schema import DIFFICULTIES, JsonValue, VtgItem

__all__ = [
    "FRESH_SEED",
    "SUBSTITUTES",
    "add_arguments",
    "command_files",
    "debias_items",
    "report_path",
    "items_leakage",
    "leakage_step",
    "run",
    "substitute_vocabulary",
]

FRESH_SEED = 1000  # the folds of the measurement after the filter: an offset no filter round reaches
SUBSTITUTES = 12  # words offered to the LLM per relevant query
# Words too common to stand for an object, action, place or attribute (with those of 1-2 letters).
_STOPWORDS = frozenset(
    "the and then with from into onto their they them this that some another while before after over under "
    "off out down away back his her its who what where when there something someone person people".split()
)
_WORD = re.compile(r"[a-z]+")


def items_leakage(items: Sequence[VtgItem], *, seed: int = 0) -> LeakageReport:
    """The text-only leakage report of the labelled queries of released-schema items (groups: video file names)."""
    return _examples_leakage(examples_from_items(items)[0], seed)


def _examples_leakage(examples: Sequence[Example], seed: int) -> LeakageReport:
    return label_leakage([e.label for e in examples], [Path(e.item.video).name for e in examples], seed=seed)


def debias_items(
    items: Sequence[VtgItem], *, target: float, min_keep: float, seed: int = 0
) -> tuple[list[VtgItem], dict[str, JsonValue]]:
    """The items without the irrelevant queries `leak_filter` drops, and the report (module docstring)."""
    items = list(items)
    examples, _ = examples_from_items(items)
    texts = [e.label.query for e in examples]
    irrelevant = [not e.label.relevant for e in examples]
    videos = [Path(e.item.video).name for e in examples]
    levels = [e.label.difficulty for e in examples]
    before = _examples_leakage(examples, seed)
    result = leak_filter(texts, irrelevant, videos, levels, target=target, min_keep=min_keep, seed=seed)
    dropped = {(e.item.index, e.query_index) for e, kept in zip(examples, result.kept, strict=True) if not kept}
    out = [
        replace(
            item, queries=tuple(q for position, q in enumerate(item.queries) if (item.index, position) not in dropped)
        )
        for item in items
    ]
    kept_examples = [e for e, kept in zip(examples, result.kept, strict=True) if kept]
    after = _examples_leakage(kept_examples, seed + FRESH_SEED)
    total = Counter(_level(e) for e in examples)
    kept = Counter(_level(e) for e in kept_examples)
    report: dict[str, JsonValue] = {
        "target_auc": target,
        "min_keep": min_keep,
        "reached": result.reached,
        "before": before.to_json(),
        "after": after.to_json(),
        "kept": {level: {"kept": kept[level], "of": total[level]} for level in _ordered(total)},
        "rounds": list(result.rounds),
        "dropped": {},  # item index -> positions of its dropped GRPO entries
    }
    for index, position in sorted(dropped):
        report["dropped"].setdefault(str(index), []).append(position)
    return out, report


def _level(example: Example) -> str:
    return "relevant" if example.label.relevant else (example.label.difficulty or "untagged")


def _ordered(levels: Counter[str]) -> list[str]:
    order = ["relevant", *DIFFICULTIES, "untagged"]
    return sorted(levels, key=lambda level: order.index(level) if level in order else len(order))


def leakage_step(
    items: Sequence[VtgItem], target: float | None, *, min_keep: float = 0.25
) -> tuple[list[VtgItem], list[dict[str, JsonValue]]]:
    """`rarft-prep hi-vtg`'s last step: print the leakage check of the built items; with a `target`,
    filter them (`debias_items`) and return the dropped queries as rejects (stage "leakage")."""
    if target is None:
        print(items_leakage(items).summary())
        return list(items), []
    kept_items, report = debias_items(items, target=target, min_keep=min_keep)
    for line in report_lines(report):
        print(line)
    reason = f"leakage: its text gives it away (query-only classifier; --debias {target})"
    rejects: list[dict[str, JsonValue]] = [
        {"stage": "leakage", "reason": reason, "video": item.video, "query": item.queries[position].query}
        for item in items
        for position in report["dropped"].get(str(item.index), [])
    ]
    return kept_items, rejects


def report_lines(report: dict[str, JsonValue]) -> list[str]:
    """The debias report as printed lines."""
    before, after = report["before"], report["after"]
    kept = ", ".join(f"{level} {entry['kept']}/{entry['of']}" for level, entry in report["kept"].items())
    return [
        f"text-only leakage before: AUC {_auc(before)}; after: AUC {_auc(after)} (fresh folds)",
        f"kept: {kept}",
        f"rounds: {len(report['rounds'])}; target {report['target_auc']} "
        + ("reached" if report["reached"] else "NOT reached within the floors"),
    ]


def _auc(leakage: dict[str, JsonValue]) -> str:
    if leakage["auc"] is None:
        return f"n/a ({leakage['note']})"
    return f"{leakage['auc']:.3f} ± {leakage['auc_se']:.3f}"


def substitute_vocabulary(queries: Sequence[str], own: str, *, seed: str, count: int = SUBSTITUTES) -> list[str]:
    """`count` content words of the relevant queries, drawn without replacement in proportion to the
    number of queries holding each (none of `own`'s words), in a seeded order; the LLM's substitutes
    then follow the dataset's vocabulary instead of its own.

    >>> substitute_vocabulary(["person opens a door", "person opens a box", "a man reads"], "person opens a box",
    ...                       seed="k", count=2)
    ['reads', 'man']
    """
    frequency: Counter[str] = Counter()
    for query in queries:
        frequency.update(set(_content_words(query)))
    excluded = set(_content_words(own))
    words = sorted(word for word in frequency if word not in excluded)
    rng = random.Random(seed)
    # Efraimidis-Spirakis: the largest u^(1/weight) keys are a weighted sample without replacement.
    keyed = sorted(words, key=lambda word: rng.random() ** (1.0 / frequency[word]), reverse=True)
    return keyed[:count]


def _content_words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if len(word) > 2 and word not in _STOPWORDS]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="released-schema JSON (e.g. rarft-prep hi-vtg's output)")
    parser.add_argument("--out", type=Path, required=True, help="the filtered file (released schema) to write")
    parser.add_argument(
        "--target-auc",
        type=open_fraction,
        default=0.55,
        help="drop irrelevant queries until the query-only classifier's out-of-fold AUC is at most this "
        "(default 0.55: the re-measurement on fresh folds then lands near it)",
    )
    parser.add_argument(
        "--min-keep",
        type=open_fraction,
        default=0.25,
        help="keep at least this share of each hardness level's queries (default 0.25)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")


def report_path(out: Path) -> Path:
    """The report written beside the filtered file OUT: OUT with `.debias.json`."""
    return out.with_suffix(".debias.json")


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(inputs=[args.input], outputs=[args.out, report_path(args.out)])


def run(args: argparse.Namespace) -> int:
    try:
        items = load_items(args.input)  # validates the file, naming the bad record
        items, impossible = items_videos_hold(items)  # left out, as rarft-prep split does: the output loads anywhere
        if not items:
            raise DataError("no item", source=str(args.input))
        kept_items, report = debias_items(items, target=args.target_auc, min_keep=args.min_keep, seed=args.seed)
    except DataError as error:
        error = error.located(source=str(args.input))
        print(f"rarft-prep debias: error: {error}", file=sys.stderr)
        return 2
    report["left_out"] = {"items": len(impossible), "first": impossible[0].index if impossible else None}
    for line in report_lines(report):
        print(line)
    if impossible:
        print(left_out_line(impossible))
    if report["before"]["auc"] is None:
        print(f"rarft-prep debias: error: nothing to measure ({report['before']['note']})", file=sys.stderr)
        return 1
    if not report["reached"]:
        print(
            f"rarft-prep debias: error: the AUC stays above {args.target_auc} within --min-keep {args.min_keep}; "
            "nothing written (lower --min-keep or raise --target-auc)",
            file=sys.stderr,
        )
        return 1
    report["produced_by"] = {
        "command": "rarft-prep debias",
        "input": str(args.input),
        "options": {"target_auc": args.target_auc, "min_keep": args.min_keep, "seed": args.seed},
    }
    report_text = json.dumps(report, indent=1, ensure_ascii=False) + "\n"
    write_files_atomic({args.out: items_text(kept_items), report_path(args.out): report_text})
    dropped = sum(entry["of"] - entry["kept"] for entry in report["kept"].values())
    print(f"{dropped} irrelevant queries dropped -> {args.out} (report: {report_path(args.out)})")
    return 0
