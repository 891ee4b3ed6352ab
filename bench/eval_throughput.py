"""Evaluation throughput: scoring 20,000 predictions with the rule-based judge (items/s, with
and without the SBERT score), and batched vs one-by-one inference with the tiny Qwen2.5-VL,
in the same run.

    python bench/eval_throughput.py [--predictions 20000] [--device cpu]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import rule_judgement  # noqa: E402
from eval.predictions import prediction_from_example  # noqa: E402
from eval.score import evaluate  # noqa: E402
from rarft_plugin.dataset import load_examples  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "rarft-official" / "hi_vtg_charades.json"


def predictions(count: int, seed: int = 0):
    examples, _ = load_examples(DATA)
    rng = random.Random(seed)
    out = []
    for index in range(count):
        e = examples[index % len(examples)]
        if rng.random() < 0.5:
            text = f"<think>t{index}</think> <answer>No segment: {e.label.answer_refusal[:120]} ({index})</answer> <correct>q</correct>"
        else:
            text = f"<think>t{index}</think> <answer>{rng.uniform(0, 10):.2f} to {rng.uniform(10, 30):.2f}</answer> <correct></correct>"
        out.append(prediction_from_example(e, text))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=20_000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rows = predictions(args.predictions)
    started = time.perf_counter()
    [rule_judgement(p.model_output) for p in rows]
    parse_only = time.perf_counter() - started
    started = time.perf_counter()
    evaluate(rows)
    rule_only = time.perf_counter() - started
    from rarft_plugin.similarity import SentenceSimilarity

    similarity = SentenceSimilarity(device=args.device)
    started = time.perf_counter()
    evaluate(rows, similarity=similarity)
    with_sbert = time.perf_counter() - started
    print(f"scoring {len(rows)} predictions (rule-based judge):")
    print(f"  parsing only          {len(rows) / parse_only:10.0f} items/s")
    print(f"  all metrics           {len(rows) / rule_only:10.0f} items/s")
    print(f"  all metrics + SBERT   {len(rows) / with_sbert:10.0f} items/s (device {args.device})")
    print("batched vs one-by-one inference (tiny Qwen2.5-VL):")
    sys.argv = [sys.argv[0], "--device", args.device, "--prompts", "16", "--batch", "8", "--new-tokens", "16"]
    from bench import inference_batching

    return inference_batching.main()


if __name__ == "__main__":
    sys.exit(main())
