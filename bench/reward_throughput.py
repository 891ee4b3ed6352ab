"""Reward throughput as OpenRLHF drives it: one sample per `reward_func` call, 8 concurrent threads.

Workload: 128 prompts x G=8 = 1,024 rollouts built from the released HI-VTG Charades file
(64 items -> 64 relevant + 64 hard-irrelevant prompts), with realistic answers: refusals of
released length, thinking text, segments, corrections; every rollout's text is unique.

Three measurements in the same run, same model, same device:
- baseline: every call encodes all of its strings itself (answer, correction and the three
  references), no cache, no batching: the released code's approach;
- rarft: `rarft_plugin.openrlhf_reward.reward_func` (cached references, coalesced batches);
- ceiling: one batched encode of only the new texts (each rollout's answer and correction).

    python bench/reward_throughput.py [--device cuda] [--threads 8] [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rarft_plugin.dataset import load_examples  # noqa: E402
from rarft_plugin.labels import Label  # noqa: E402
from rarft_plugin.rewards import score_many  # noqa: E402
from rarft_plugin.similarity import SentenceSimilarity, normalize_text, resolve_model  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "rarft-official" / "hi_vtg_charades.json"
PROMPT = "<|im_start|>system\nYou are a video analysis expert.<|im_end|>\n<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>{query}<|im_end|>\n<|im_start|>assistant\n"


def build_rollouts(data: Path, prompts: int, group: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(query = prompt + response, prompt, label JSON) per rollout."""
    examples, _ = load_examples(data)
    examples = examples[:prompts]
    refusals = [e.label.answer_refusal for e in examples if not e.label.relevant]
    rng = random.Random(seed)
    rollouts = []
    for example in examples:
        label: Label = example.label
        prompt = PROMPT.format(query=label.query)
        for g in range(group):
            think = example.item.think.replace("<think>", "").replace("</think>", "")[:600] or "Looking at the frames."
            if rng.random() < 0.5:  # a refusal, as a trained policy produces for half the queries
                answer = f"{rng.choice(refusals)} (rollout {g}: the query mentions details the video lacks.)"
                correction = f"{label.query_relevant or label.query} (variant {g})"
            else:
                start = rng.uniform(0, label.duration / 2)
                answer = f"{start:.2f} to {start + rng.uniform(1, label.duration / 2):.2f}"
                correction = "" if g % 2 else f"the person in the video, take {g}"
            response = f"<think>{think} step {g}</think> <answer>{answer}</answer> <correct>{correction}</correct>"
            rollouts.append((prompt + response + "<|im_end|>", prompt, json.dumps(label.to_json())))
    return rollouts


class UncachedSimilarity:
    """The baseline: each call encodes every string it needs, by itself."""

    def __init__(self, model):
        self.model = model

    def cosine_pairs(self, pairs):
        import numpy as np

        texts = [normalize_text(t) for pair in pairs for t in pair]
        vectors = self.model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return [float(c) for c in np.clip(np.einsum("ij,ij->i", vectors[0::2], vectors[1::2]), -1, 1)]


def run_calls(call, rollouts, threads: int) -> tuple[float, list[float]]:
    def timed(rollout):
        started = time.perf_counter()
        call(rollout)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(timed, rollouts))
    return time.perf_counter() - started, latencies


def new_texts(rollouts) -> list[str]:
    from rarft_plugin.parsing import extract_response, parse_response

    texts = []
    for query, prompt, _ in rollouts:
        parsed = parse_response(extract_response(query, prompt))
        texts += [t for t in (parsed.answer, parsed.correction) if t]
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="sentence-transformers model (default: packaged MiniLM)")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    import rarft_plugin.openrlhf_reward as entry

    rollouts = build_rollouts(args.data, args.prompts, args.group)
    model_path = resolve_model(args.model)
    print(f"{len(rollouts)} rollouts ({args.prompts} prompts x G={args.group}), {args.threads} threads, "
          f"device={args.device}, model={model_path}")

    baseline_model = SentenceTransformer(model_path, device=args.device)
    ours = SentenceSimilarity(model_path, device=args.device)
    for model in (baseline_model, ours._model):  # warm-up outside the timings
        model.encode(["warm up"] * 8, show_progress_bar=False)

    baseline_sim = UncachedSimilarity(baseline_model)
    baseline_time, baseline_lat = run_calls(
        lambda r: score_many([entry.extract_response(r[0], r[1])], [r[2]], similarity=baseline_sim), rollouts, args.threads
    )

    entry._OPTIONS = {"variant": "paper", "weights": None, "similarity": ours}  # a cold cache, this model
    ours_time, ours_lat = run_calls(lambda r: entry.reward_func([r[0]], [r[1]], [r[2]]), rollouts, args.threads)

    texts = new_texts(rollouts)
    started = time.perf_counter()
    baseline_model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                          show_progress_bar=False)
    ceiling_time = time.perf_counter() - started

    def row(name, seconds, latencies=None):
        rate = len(rollouts) / seconds
        lat = (f"p50 {statistics.median(latencies) * 1e3:7.1f} ms  p99 {sorted(latencies)[int(0.99 * len(latencies)) - 1] * 1e3:7.1f} ms"
               if latencies else " " * 36)
        print(f"  {name:<9} {rate:9.1f} rollouts/s  {lat}")

    print("results:")
    row("baseline", baseline_time, baseline_lat)
    row("rarft", ours_time, ours_lat)
    row("ceiling", ceiling_time)
    print(f"rarft encoded {ours.encoded_texts} texts in {ours.encode_calls} batches "
          f"(baseline: {5 * len(rollouts)} texts in {len(rollouts)} calls); "
          f"ceiling encodes {len(texts)} new texts")
    print(f"speed-up vs baseline: {baseline_time / ours_time:.2f}x (goal >= 3x)")
    print(f"fraction of ceiling:  {ceiling_time / ours_time:.0%} (goal >= 80%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
