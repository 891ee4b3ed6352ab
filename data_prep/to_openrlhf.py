"""`rarft-prep to-openrlhf`: released-schema file -> OpenRLHF prompt JSONL with videos.

    rarft-prep to-openrlhf IN.json OUT.jsonl --video-root DIR --template ra_rft [--ratio 1:3]

One line per query (`rarft_plugin.dataset.load_examples`), a prompt row of `rarft_plugin.prompt_row`
(its layout and the dataset flags that read it, which rarft-train passes). Video paths are resolved
once, up front (`rarft_plugin.video.video_candidates`), to the first existing non-empty file of:
the path as written (absolute, or relative to the input file), DIR/path (relative paths),
DIR/<file name>, each also with a video extension added when the name has none (`--video-ext`,
default .mp4 .mkv .webm .avi .mov); so the released files' absolute
(`/data/sungjoon/Charades_v1/E6DLK.mp4`) and relative (`../dataset/selected_videos/72LJ3.mp4`)
paths and Charades-STA's bare ids (`AO8RW`) all resolve against a flat `--video-root` holding the
files by name. Every missing or empty video is reported at once, with the names tried, and nothing
is written. Then every clip that will be written is probed (opened, its `video_start`/`video_end`
window checked against its real length, the window's first and last frame decoded): truncated,
non-video and zero-length files and windows beyond the video are all reported at once, with their
records, before anything is written (`--no-probe` checks existence only).

A record without a `duration` (the released HI-TVGBench / SS-QVHighlights files have `null`) gets
its label's duration from the video: the clip window's length `video_end - video_start` when the
record has both, else the probed length of the video less `video_start`. Such videos are probed
even with `--no-probe`, and a span the measured length cannot hold is refused as one the file's
duration cannot hold is on load (`rarft_plugin.schema.span_problem`, one rule everywhere).

`--ratio R:I` keeps relevant and irrelevant queries in that proportion by dropping (seeded) part of
the larger class; the paper trains at 1:3 and evaluates at 1:1. Without it every query is kept.

`--pairing released --epochs N` writes what the authors' released training reads
(main_rarft.py:460-504): per item one relevant example and one irrelevant example whose query is
drawn from the item's irrelevant queries (its pool: strong / moderate / weak, at most 3 in the
released data), drawn anew each time the item is read, i.e. once per epoch. OpenRLHF hands the
executor no step or epoch, so the N draws are made here, seeded by `--seed`, epoch and item: the
file holds N epochs (rows `ITEM:QUERY@eK`), and the released preset trains one pass over it
(`RARFT_PRESET=released`, docs/train.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rarft_plugin.arguments import parse_ratio, positive_int
from rarft_plugin.clips import VideoError
from rarft_plugin.command_files import CommandFiles
from rarft_plugin.dataset import Example, load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_jsonl_atomic
from rarft_plugin.prompt_row import make_row
from rarft_plugin.prompts import TEMPLATES
from rarft_plugin.schema import clip_length, span_problem
from rarft_plugin.video import (
    VIDEO_EXTENSIONS,
    check_clips,
    probe,
    resolve_videos,
    video_extension,
    video_spec,
)


def apply_ratio(examples: list[Example], ratio: tuple[int, int] | None, seed: int) -> list[Example]:
    """Keep relevant : irrelevant = ratio by dropping part of the larger class (seeded, order kept)."""
    if ratio is None:
        return examples
    relevant = [e for e in examples if e.label.relevant]
    irrelevant = [e for e in examples if not e.label.relevant]
    want_r, want_i = ratio
    scale = min(
        len(relevant) / want_r if want_r else float("inf"), len(irrelevant) / want_i if want_i else float("inf")
    )
    keep_r, keep_i = int(scale * want_r) if want_r else 0, int(scale * want_i) if want_i else 0
    rng = random.Random(seed)
    kept = set(map(id, rng.sample(relevant, keep_r))) | set(map(id, rng.sample(irrelevant, keep_i)))
    return [e for e in examples if id(e) in kept]


def released_pairing(examples: list[Example], epochs: int, seed: int) -> list[tuple[Example, str]]:
    """(example, row id) of `epochs` passes over the items: per item its first relevant query and one
    irrelevant query drawn from the item's, seeded by (seed, epoch, item); items in file order."""
    items: dict[int, list[Example]] = {}
    for example in examples:
        items.setdefault(example.item.index, []).append(example)
    rows = []
    for epoch in range(1, epochs + 1):
        for index, queries in items.items():
            relevant = [e for e in queries if e.label.relevant][:1]
            pool = [e for e in queries if not e.label.relevant]
            drawn = [random.Random(f"{seed}:{epoch}:{index}").choice(pool)] if pool else []
            rows += [(e, f"{e.key}@e{epoch}") for e in relevant + drawn]
    return rows


def with_video_durations(examples: list[Example], videos: dict[str, Path], *, workers: int = 8) -> list[Example]:
    """Examples whose label lacks a duration get it from the video (`rarft_plugin.schema.clip_length`: the
    clip window, or the probed video from `video_start` on); the others unchanged.

    Each distinct video that is needed is probed once, in threads; a video that cannot be probed is
    a DataError listing every such video with a record.
    """
    needed = {e.item.video for e in examples if e.label.duration is None and e.item.video_end is None}
    paths = sorted(needed)

    def seconds(path: str) -> float | VideoError:
        try:
            return probe(str(videos[path]))
        except VideoError as error:
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        probed = dict(zip(paths, pool.map(seconds, paths), strict=True))
    failed = {path: value for path, value in probed.items() if isinstance(value, VideoError)}
    if failed:
        records = {e.item.video: e.item.index for e in examples}
        listed = "; ".join(f"record {records[path]}: {error}" for path, error in failed.items())
        raise DataError(f"{len(failed)} video(s) without a duration in the file cannot be measured: {listed}")
    out = []
    for example in examples:
        if example.label.duration is None:
            length = clip_length(probed.get(example.item.video), example.item.video_start, example.item.video_end)
            example = dataclasses.replace(example, label=dataclasses.replace(example.label, duration=length))
        out.append(example)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="released-schema JSON (HI-VTG / SS-VTG / human-annotated)")
    parser.add_argument("output", type=Path, help="OpenRLHF prompt JSONL to write")
    parser.add_argument(
        "--video-root",
        type=Path,
        default=None,
        help="directory holding the videos (looked up by the records' paths, then by file name)",
    )
    parser.add_argument(
        "--video-ext",
        dest="video_extensions",
        type=video_extension,
        action="append",
        default=None,
        help="extension tried for a video named without one, e.g. a bare Charades id; repeat for "
        f"several (default: {' '.join(VIDEO_EXTENSIONS)})",
    )
    parser.add_argument("--template", choices=sorted(TEMPLATES), default="ra_rft", help="prompt template")
    parser.add_argument(
        "--purpose",
        choices=("train", "eval"),
        default="train",
        help="message layout of the released code: train = text first; eval = system message, video first",
    )
    parser.add_argument("--ratio", type=parse_ratio, default=None, help="relevant:irrelevant, e.g. 1:3 (default: all)")
    parser.add_argument(
        "--pairing",
        choices=("all", "released"),
        default="all",
        help="all: one row per query (default); released: per item and epoch one relevant query and one "
        "irrelevant query drawn from the item's (the released training; with --epochs)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=3, help="epochs written by --pairing released (default: 3, released)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of --ratio's sampling and --pairing's draws (same seed, same file)"
    )
    parser.add_argument(
        "--unknown-span",
        choices=("skip", "error"),
        default="skip",
        help="relevant queries whose span is not in the file (SS-VTG defect): leave out, or fail",
    )
    parser.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="only check that the videos exist; skip opening and decoding each clip",
    )


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(inputs=[args.input], outputs=[args.output])


def run(args: argparse.Namespace) -> int:
    if args.pairing == "released" and args.ratio is not None:
        print(
            "rarft-prep to-openrlhf: error: --pairing released draws one irrelevant query per item; "
            "it takes no --ratio",
            file=sys.stderr,
        )
        return 2
    try:
        examples, report = load_examples(args.input, unknown_span=args.unknown_span)
        if not examples:
            raise DataError("no query to convert", source=str(args.input))
        videos = resolve_videos(
            examples,
            video_root=args.video_root,
            source=args.input,
            extensions=tuple(args.video_extensions or VIDEO_EXTENSIONS),
        )
        kept = apply_ratio(examples, args.ratio, args.seed)
        if args.probe:
            check_clips(kept, videos, source=args.input)
        kept = with_video_durations(kept, videos)
        impossible = [e for e in kept if e.item.duration is None and span_problem(e.label.timestamp, e.label.duration)]
        if impossible:  # the file had no duration to check the span against: the video's says it cannot hold it
            first = impossible[0]
            raise DataError(
                f"{span_problem(first.label.timestamp, first.label.duration)} (measured): a span the video cannot "
                f"hold ({len(impossible)} such queries)",
                record=first.item.index,
                field="timestamp",
            )
        if not kept:
            raise DataError(
                f"--ratio {args.ratio[0]}:{args.ratio[1]} keeps no query of this file "
                f"({sum(e.label.relevant for e in examples)} relevant, "
                f"{sum(not e.label.relevant for e in examples)} irrelevant)",
                source=str(args.input),
            )
    except DataError as error:
        error = error.located(source=str(args.input))
        print(f"rarft-prep to-openrlhf: error: {error}", file=sys.stderr)
        return 2
    chosen = (
        released_pairing(kept, args.epochs, args.seed) if args.pairing == "released" else [(e, e.key) for e in kept]
    )
    rows = [
        make_row(
            e.label,
            video_spec(e, videos[e.item.video]),
            template=args.template,
            purpose=args.purpose,
            datasource=args.input.stem,
            row_id=row_id,
        )
        for e, row_id in chosen
    ]
    write_jsonl_atomic(args.output, rows)
    relevant = sum(e.label.relevant for e, _ in chosen)
    pairing = f", {args.epochs} epoch(s) of released pairing" if args.pairing == "released" else ""
    print(report.summary())
    print(
        f"wrote {len(rows)} prompts ({relevant} relevant, {len(rows) - relevant} irrelevant, "
        f"{len(videos)} videos, template {args.template}{pairing}) -> {args.output}"
    )
    return 0
