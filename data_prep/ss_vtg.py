"""`rarft-prep ss-vtg`: SS-VTG, irrelevant queries by shuffling queries across videos.

Each relevant query gets one irrelevant query taken from a different video (never the same
video), 1:1, seeded. Output in the released schema, like `ss_vtg_charades.json`: the irrelevant
entry is tagged `easy` with no categories and no refusal text (the loader reads it as
`shuffled`).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from rarft_plugin.arguments import positive_int
from rarft_plugin.command_files import CommandFiles
from rarft_plugin.dataset import items_text
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import jsonl_text, write_files_atomic
from rarft_plugin.schema import DIFFICULTY, VtgItem, VtgQuery

from .importers import DURATIONS_HELP, IMPORTERS, QueryRecord, import_records

__all__ = [
    "add_arguments",
    "command_files",
    "run",
    "shuffled_items",
]


def shuffled_items(records: list[QueryRecord], seed: int) -> list[VtgItem]:
    """One item per record: its query (relevant) and a query of another video (irrelevant)."""
    videos = len({r.video for r in records})
    if videos < 2:
        raise DataError(
            f"shuffling needs usable queries from at least two videos, found {len(records)} "
            f"quer{'y' if len(records) == 1 else 'ies'} of {videos}"
        )
    rng = random.Random(seed)
    items = []
    for record in records:
        other = rng.choice(records)
        while other.video == record.video:
            other = rng.choice(records)
        queries = (
            VtgQuery(query=record.query, relevant=True, tag=DIFFICULTY["original"].tag),
            VtgQuery(query=other.query, relevant=False, tag=DIFFICULTY["shuffled"].tag, query_origin=other.video),
        )
        items.append(
            VtgItem(
                video=record.video,
                query_text=record.query,
                timestamp=record.timestamp,
                queries=queries,
                duration=record.duration,
                video_start=record.video_start,
                video_end=record.video_end,
            )
        )
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="VTG annotations (relevant queries with their spans)")
    parser.add_argument("--format", choices=sorted(IMPORTERS), required=True, help="annotation format (importers)")
    parser.add_argument("--durations", type=Path, default=None, help=DURATIONS_HELP)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="SS-VTG JSON (released schema) to write; import rejects go to OUT.rejects.jsonl",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle (same seed, same file)")
    parser.add_argument("--max-items", type=positive_int, default=None, help="only the first N relevant queries")


def rejects_path(out: Path) -> Path:
    return out.with_suffix(".rejects.jsonl")


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(inputs=[args.input, args.durations], outputs=[args.out, rejects_path(args.out)])


def run(args: argparse.Namespace) -> int:
    try:
        records, rejects = import_records(args.input, args.format, args.durations)
        records = records[: args.max_items] if args.max_items else records
        items = shuffled_items(records, args.seed)
    except DataError as error:
        error = error.located(source=str(args.input))
        print(f"rarft-prep ss-vtg: error: {error}", file=sys.stderr)
        return 2
    write_files_atomic({args.out: items_text(items), rejects_path(args.out): jsonl_text(rejects)})
    print(f"items: {len(items)} (1 relevant : 1 shuffled each) -> {args.out}; import rejects: {len(rejects)}")
    return 0
