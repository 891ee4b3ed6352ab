"""`rarft-demo`: the main job on the bundled sample data, end to end on a CPU; and stand-in assets.

    rarft-demo [--out runs/demo]
    rarft-demo make-assets --out DIR [--data FILE ...] [--no-model]

`rarft-demo` (no command):

1. scores the sample rollouts (`rarft_plugin/samples/rollouts.jsonl`, written against a small
   sample of the released HI-VTG / human-annotated / SS-VTG files) with the paper's rewards,
   prints the breakdown table and writes it as JSONL;
2. converts the HI-VTG sample to OpenRLHF prompt JSONL (with short generated stand-in videos,
   since the real ones are not distributed);
3. evaluates the sample rollouts as model predictions: every metric of the paper, with the
   rule-based judge and the SBERT score, written as a report.

`make-assets` makes what trying the pipeline needs when the real videos and checkpoints are not at
hand: under DIR, `videos/` holds one generated clip per video a data file's records name (by file
name, `.mp4` added to a bare id; as long as the record's duration / clip window needs), `model/` a
tiny randomly initialised Qwen2.5-VL with its processor (`rarft_plugin.testing`: right
architecture, chat template and special tokens, toy size, nonsense output), and, without `--data`,
`samples/` a copy of the bundled sample files the videos are made for. Rerunning skips what exists;
each clip is written under a temporary name first, so an interrupted run leaves no broken clip.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable

from rarft_plugin import score_rollouts
from rarft_plugin.cli import entry_point

SAMPLES = Path(__file__).resolve().parent / "samples"


SAMPLE_FILES = ("hi_vtg_charades_sample.json", "human_anno_sample.json", "ss_vtg_charades_sample.json")
STAND_IN_FPS = 4
STAND_IN_SIZE = (112, 84)


def video_records(path: Path) -> list[dict[str, Any]]:
    """The records of a released-schema JSON list, or of a JSONL file, that name a video."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except ValueError:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [row for row in rows if isinstance(row, dict) and isinstance(row.get("video"), str)]


def stand_in_name(video: str) -> str:
    """The file a record's video resolves to under a flat video root (`rarft_plugin.dataset.video_candidates`).

    >>> stand_in_name("/data/x/Charades_v1/E6DLK.mp4"), stand_in_name("AO8RW")
    ('E6DLK.mp4', 'AO8RW.mp4')
    """
    from rarft_plugin.dataset import VIDEO_EXTENSIONS

    name = Path(video).name
    return name if Path(name).suffix.lower() in VIDEO_EXTENSIONS else f"{name}.mp4"


def stand_in_seconds(records: Iterable[dict[str, Any]]) -> float:
    """Long enough for every record of one video: its duration, clip end and span end, whole seconds."""
    needed = [2.0]
    for record in records:
        for value in (record.get("duration"), record.get("video_end"), *(record.get("timestamp") or [])[1:]):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                needed.append(float(value))
    return float(math.ceil(max(needed)))


def stand_in_videos(data_files: Iterable[Path], root: Path) -> tuple[Path, int]:
    """A generated clip under each video name the files' records use; returns (root, clips made now)."""
    from rarft_plugin.testing import write_test_video

    by_name: dict[str, list[dict]] = {}
    for path in data_files:
        for record in video_records(path):
            by_name.setdefault(stand_in_name(record["video"]), []).append(record)
    root.mkdir(parents=True, exist_ok=True)
    made = 0
    for name, records in sorted(by_name.items()):
        target = root / name
        if target.exists():
            continue
        partial = target.with_name(f".{target.stem}.partial{target.suffix}")  # the suffix picks the container
        write_test_video(partial, seconds=stand_in_seconds(records), fps=STAND_IN_FPS, size=STAND_IN_SIZE)
        os.replace(partial, target)
        made += 1
    return root, made


def make_assets(out: Path, data_files: list[Path] | None, *, model: bool = True) -> dict[str, Path]:
    """Stand-in videos (and the tiny model, and the samples when no data is given) under `out`."""
    made: dict[str, Path] = {}
    if not data_files:
        samples = out / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        for name in SAMPLE_FILES:
            shutil.copyfile(SAMPLES / name, samples / name)
        data_files = [samples / name for name in SAMPLE_FILES]
        made["samples"] = samples
    made["videos"], count = stand_in_videos(data_files, out / "videos")
    print(f"videos: {count} made, {len(list(made['videos'].iterdir())) - count} already there -> {made['videos']}/")
    if model:
        from rarft_plugin.testing import build_tiny_qwen2_5_vl

        directory = out / "model"
        if not (directory / "config.json").is_file():
            build_tiny_qwen2_5_vl(directory)
        made["model"] = directory
        print(f"model: a tiny random Qwen2.5-VL (for trying the pipeline, not for results) -> {directory}/")
    if "samples" in made:
        print(f"samples: {', '.join(SAMPLE_FILES)} -> {made['samples']}/")
    return made


def sample_predictions(out: Path) -> Path:
    """The first sample rollout of each query, as a prediction file."""
    from eval.predictions import prediction_from_example
    from rarft_plugin.dataset import load_examples

    rows, seen = [], set()
    examples = {}
    for line in (SAMPLES / "rollouts.jsonl").read_text().splitlines():
        rollout = json.loads(line)
        key = (rollout["data"], rollout["example"])
        if key in seen:
            continue
        seen.add(key)
        if rollout["data"] not in examples:
            examples[rollout["data"]] = {e.key: e for e in load_examples(SAMPLES / rollout["data"])[0]}
        prediction = prediction_from_example(examples[rollout["data"]][rollout["example"]], rollout["response"])
        rows.append({**prediction.to_json(), "id": f"{rollout['data']}:{prediction.id}"})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out


@entry_point("rarft-demo")
def main(argv: list[str] | None = None) -> int:
    from data_prep.cli import main as prep
    from eval.cli import main as rarft_eval

    parser = argparse.ArgumentParser(prog="rarft-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    assets = sub.add_parser("make-assets", help="stand-in videos and a tiny model for trying the pipeline",
                            description="Stand-in videos named as a data file's records need, a tiny random "
                                        "Qwen2.5-VL, and (without --data) a copy of the bundled samples.")
    assets.add_argument("--out", type=Path, required=True, help="directory for videos/, model/ (and samples/)")
    assets.add_argument("--data", type=Path, nargs="+", default=None,
                        help="released-schema JSON or JSONL file(s) whose videos to make (default: the bundled "
                             "samples, copied to OUT/samples/)")
    assets.add_argument("--no-model", dest="model", action="store_false", help="only the videos")
    args = parser.parse_args(argv)
    if args.command == "make-assets":
        missing = [str(path) for path in args.data or [] if not path.is_file()]
        if missing:
            print(f"rarft-demo make-assets: error: file not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        make_assets(args.out, args.data, model=args.model)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)

    print("== 1. RA-RFT reward breakdown of the sample rollouts (paper rewards) ==")
    status = score_rollouts.main([str(SAMPLES / "rollouts.jsonl"), "--out", str(args.out / "rollout_rewards.jsonl")])

    print("\n== 2. HI-VTG sample -> OpenRLHF prompt JSONL with videos (train with --ratio 1:3 as the paper) ==")
    data = SAMPLES / "hi_vtg_charades_sample.json"
    videos, _ = stand_in_videos([data], args.out / "videos")
    status = status or prep(["to-openrlhf", str(data), str(args.out / "train_prompts.jsonl"), "--video-root",
                             str(videos), "--template", "ra_rft"])

    print("\n== 3. Evaluation of the sample rollouts as predictions (rule-based judge, SBERT score) ==")
    predictions = sample_predictions(args.out / "predictions.jsonl")
    status = status or rarft_eval(["score", str(predictions), "--out", str(args.out / "eval"),
                                   "--title", "rarft demo: sample rollouts"])
    print(f"\nDone. Outputs in {args.out}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
