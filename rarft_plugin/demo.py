"""`rarft-demo`: the main job on the bundled sample data, end to end on a CPU.

Step 1 scores the sample rollouts (`rarft_plugin/samples/rollouts.jsonl`, written against a
small sample of the released HI-VTG / human-annotated / SS-VTG files) with the paper's
rewards, prints the breakdown table and writes it as JSONL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rarft_plugin import score_rollouts

SAMPLES = Path(__file__).resolve().parent / "samples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rarft-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    print("== 1. RA-RFT reward breakdown of the sample rollouts (paper rewards) ==")
    score_rollouts.main([str(SAMPLES / "rollouts.jsonl"), "--out", str(args.out / "rollout_rewards.jsonl")])
    print(f"\nDone. Outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
