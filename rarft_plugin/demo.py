"""`rarft-demo`: the main job on the bundled sample data, end to end on a CPU.

1. scores the sample rollouts (`rarft_plugin/samples/rollouts.jsonl`, written against a small
   sample of the released HI-VTG / human-annotated / SS-VTG files) with the paper's rewards,
   prints the breakdown table and writes it as JSONL;
2. converts the HI-VTG sample to OpenRLHF prompt JSONL (with short generated stand-in videos,
   since the real ones are not distributed);
3. evaluates the sample rollouts as model predictions: every metric of the paper, with the
   rule-based judge and the SBERT score, written as a report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rarft_plugin import score_rollouts
from rarft_plugin.cli import entry_point

SAMPLES = Path(__file__).resolve().parent / "samples"


def stand_in_videos(data: Path, root: Path) -> Path:
    """A short generated clip under each video name the sample uses, as long as its record says."""
    from rarft_plugin.testing import write_test_video

    for item in json.loads(data.read_text()):
        path = root / Path(item["video"]).name
        if not path.exists():
            write_test_video(path, seconds=item["duration"], fps=4, size=(112, 84))
    return root


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
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    print("== 1. RA-RFT reward breakdown of the sample rollouts (paper rewards) ==")
    status = score_rollouts.main([str(SAMPLES / "rollouts.jsonl"), "--out", str(args.out / "rollout_rewards.jsonl")])

    print("\n== 2. HI-VTG sample -> OpenRLHF prompt JSONL with videos (train with --ratio 1:3 as the paper) ==")
    data = SAMPLES / "hi_vtg_charades_sample.json"
    videos = stand_in_videos(data, args.out / "videos")
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
