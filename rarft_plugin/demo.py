"""`rarft-demo`: the main job on the bundled sample data, end to end on a CPU; and stand-in assets.

    rarft-demo [--out runs/demo]
    rarft-demo make-assets --out DIR [--data FILE ...] [--family NAME] [--no-model]

`rarft-demo` (no command) runs the three command lines on the sample files shipped in
`rarft_plugin/samples/` (a small sample of the released HI-VTG / human-annotated / SS-VTG files),
each as `python -m ...` in a process of its own:

1. `rarft-score`: scores the sample rollouts (`rollouts.jsonl`) with the paper's rewards, prints
   the breakdown table and writes it as JSONL;
2. `rarft-prep to-openrlhf`: converts the HI-VTG sample to OpenRLHF prompt JSONL (with short
   generated stand-in videos, since the real ones are not distributed);
3. `rarft-eval evaluate`: evaluates the first sample rollout of each query as a model prediction
   (`predictions.jsonl`): every metric of the paper, with the rule-based judge and the SBERT score,
   written as a report.

`make-assets` makes what trying the pipeline needs when the real videos and checkpoints are not at
hand (`rarft_plugin.stand_ins.make_assets`): under DIR, `videos/` holds one generated clip per video
a data file's records name (by file name, `.mp4` added to a bare id; as long as the record's
duration / clip window needs), `model/` a tiny randomly initialised model of the `--family`
(`qwen2_5_vl`, the default, or `qwen3_vl`) with its processor (right architecture, chat template and
special tokens, toy size, nonsense output), and, without
`--data`, `samples/` a copy of the bundled sample files the videos are made for. Rerunning skips
what exists; each clip is written under a temporary name first, so an interrupted run leaves no
broken clip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rarft_plugin.cli import ArgumentParser, command_line, entry_point
from rarft_plugin.command_files import CommandFiles, Output, claim
from rarft_plugin.errors import DataError
from rarft_plugin.stand_ins import SAMPLES, TINY_MODELS, make_assets, stand_in_videos

__all__ = ["SAMPLES", "main", "run_cli"]

# The directory holding rarft_plugin, data_prep and eval (a checkout or site-packages): put first on the
# children's path so that they run the same code as this process, installed or not.
_PACKAGES = Path(__file__).resolve().parents[1]


def run_cli(module: str, args: list[str]) -> int:
    """`python -m module args` in a process of its own, sharing this one's terminal; its exit status."""
    path = os.pathsep.join(filter(None, [str(_PACKAGES), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", module, *args], env={**os.environ, "PYTHONPATH": path}).returncode


def not_a_demo_folder(out: Path) -> str | None:
    """Why an existing --out may not receive the demo, or None: the one file the demo copies rather than
    writes through a command (whose own checks guard the rest) must be the sample it copies."""
    copied = out / "predictions.jsonl"
    if copied.exists() and copied.read_bytes() != (SAMPLES / "predictions.jsonl").read_bytes():
        return "holds a predictions.jsonl that is not the demo's: not overwritten; choose another --out"
    return None


def run_demo(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    print("== 1. RA-RFT reward breakdown of the sample rollouts (paper rewards) ==", flush=True)
    status = run_cli(
        "rarft_plugin.score_rollouts", [str(SAMPLES / "rollouts.jsonl"), "--out", str(out / "rollout_rewards.jsonl")]
    )
    if status:
        return status

    print(
        "\n== 2. HI-VTG sample -> OpenRLHF prompt JSONL with videos (train with --ratio 1:3 as the paper) ==",
        flush=True,
    )
    data = SAMPLES / "hi_vtg_charades_sample.json"
    videos, _ = stand_in_videos([data], out / "videos")
    status = run_cli(
        "rarft_prep.cli",
        [
            "to-openrlhf",
            str(data),
            str(out / "train_prompts.jsonl"),
            "--video-root",
            str(videos),
            "--template",
            "ra_rft",
        ],
    )
    if status:
        return status

    print("\n== 3. Evaluation of the sample rollouts as predictions (rule-based judge, SBERT score) ==", flush=True)
    predictions = shutil.copyfile(SAMPLES / "predictions.jsonl", out / "predictions.jsonl")
    status = run_cli(
        "rarft_eval.cli",
        ["evaluate", str(predictions), "--out", str(out / "eval"), "--title", "rarft demo: sample rollouts"],
    )
    if status:
        return status
    print(f"\nDone. Outputs in {out}/")
    return 0


@entry_point("rarft-demo")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="rarft-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    assets = sub.add_parser(
        "make-assets",
        help="stand-in videos and a tiny model for trying the pipeline",
        description="Stand-in videos named as a data file's records need, a tiny random model "
        "of a model family, and (without --data) a copy of the bundled samples.",
    )
    assets.add_argument("--out", type=Path, required=True, help="directory for videos/, model/ (and samples/)")
    assets.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=None,
        help="released-schema JSON or JSONL file(s) whose videos to make (default: the bundled "
        "samples, copied to OUT/samples/)",
    )
    assets.add_argument(
        "--family",
        choices=sorted(TINY_MODELS),
        default="qwen2_5_vl",
        help="model family of the tiny model (default: qwen2_5_vl, the paper's)",
    )
    assets.add_argument("--no-model", dest="model", action="store_false", help="only the videos")
    args = parser.parse_args(argv)
    prog = "rarft-demo make-assets" if args.command == "make-assets" else "rarft-demo"
    folder = Output(args.out, folder=True, resumes=None if args.command else not_a_demo_folder)
    try:
        with claim(
            CommandFiles.of(inputs=getattr(args, "data", None) or [], outputs=[folder]),
            holder=command_line("rarft-demo", argv),
        ):
            if args.command == "make-assets":
                make_assets(args.out, args.data, model=args.model, family=args.family)
                return 0
            return run_demo(args.out)
    except DataError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
