"""Reward throughput as OpenRLHF drives it: one sample per `reward_func` call, 8 concurrent threads.

Workload: 128 prompts x G=8 = 1,024 rollouts built from the released HI-VTG Charades file
(64 items -> 64 relevant + 64 hard-irrelevant prompts), with realistic answers: refusals of
released length, thinking text, segments, corrections; every rollout's text is unique.

Three measurements in the same run, same model, same device:
- baseline: every call encodes all of its strings itself (answer, correction and the three
  references), no cache, no batching: the released code's approach;
- rarft: `rarft_plugin.openrlhf_reward.reward_func` (cached references, coalesced batches);
- ceiling: one batched encode of only the new texts (each rollout's answer and correction).

And the length cap (`rarft_plugin.similarity.capped_text`) on texts far longer than any rollout:
each encoded as given (sentence-transformers) and as rarft encodes it, the time of each and the
largest difference between the two embeddings (0: the cap never changes what the encoder reads).

    python bench/reward_throughput.py [--device cpu,cuda] [--threads 8] [--data PATH]
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
from rarft_plugin.prompts import instruction  # noqa: E402
from rarft_plugin.rewards import score_many  # noqa: E402
from rarft_plugin.schema import Label  # noqa: E402
from rarft_plugin.similarity import SentenceSimilarity, resolve_model  # noqa: E402

DEFAULT_DATA = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"
PROMPT = (
    "<|im_start|>system\nYou are a video analysis expert.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|video_pad|><|vision_end|>{query}<|im_end|>\n<|im_start|>assistant\n"
)


def build_rollouts(
    data: Path, prompts: int, group: int, seed: int = 0, template: str | None = None
) -> list[tuple[str, str, str]]:
    """(query = prompt + response, prompt, label JSON) per rollout; the prompt asks the query itself, or with
    `template` its instruction (`rarft_plugin.prompts`)."""
    examples, _ = load_examples(data)
    examples = examples[:prompts]
    refusals = [e.label.answer_refusal for e in examples if not e.label.relevant]
    rng = random.Random(seed)
    rollouts = []
    for example in examples:
        label: Label = example.label
        prompt = PROMPT.format(query=instruction(template, label.query) if template else label.query)
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

        texts = [t for pair in pairs for t in pair]
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


def measure(device: str, model_path: str, rollouts, threads: int) -> dict[str, tuple[float, list[float] | None]]:
    """baseline / rarft / ceiling wall times (and per-call latencies) on one device."""
    from sentence_transformers import SentenceTransformer

    import rarft_plugin.openrlhf_reward as entry

    baseline_model = SentenceTransformer(model_path, device=device)
    ours = SentenceSimilarity(model_path, device=device)
    for model in (baseline_model, ours._model):  # warm-up outside the timings
        model.encode(["warm up"] * 8, show_progress_bar=False)

    baseline_sim = UncachedSimilarity(baseline_model)
    results = {
        "baseline": run_calls(
            lambda r: score_many([entry.extract_response(r[0], r[1])], [r[2]], similarity=baseline_sim),
            rollouts,
            threads,
        )
    }
    entry._OPTIONS = {"variant": "paper", "weights": None, "similarity": ours}  # a cold cache, this model
    results["rarft"] = run_calls(lambda r: entry.reward_func([r[0]], [r[1]], [r[2]]), rollouts, threads)

    texts = new_texts(rollouts)
    started = time.perf_counter()
    baseline_model.encode(
        texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    results["ceiling"] = (time.perf_counter() - started, None)
    print(
        f"[{device}] rarft encoded {ours.encoded_texts} texts in {ours.encode_calls} batches; "
        f"baseline {5 * len(rollouts)} texts in {len(rollouts)} calls; ceiling {len(texts)} new texts in one encode"
    )
    return results


def measure_long_texts(device: str, model_path: str, data: Path) -> None:
    """Encoding megabyte texts as given vs through rarft's length cap: time and the largest embedding difference."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    examples, _ = load_examples(data)
    refusals = " ".join(e.label.answer_refusal for e in examples if not e.label.relevant)
    texts = {
        "released refusals joined (realistic prose)": (refusals * (1 + 1_000_000 // len(refusals)))[:1_000_000],
        "'1 ' repeated": "1 " * 500_000,
        "a word repeated": "word " * 200_000,
    }
    model, ours = SentenceTransformer(model_path, device=device), SentenceSimilarity(model_path, device=device)
    model.encode(["warm up"], show_progress_bar=False)
    ours.encode(["warm up"])
    print(f"[{device}] 1 MB texts: encoded as given vs rarft's cap (seconds; max |embedding difference|)")
    for name, text in texts.items():
        started = time.perf_counter()
        given = model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
        middle = time.perf_counter()
        capped = ours.encode([text])[0]
        done = time.perf_counter()
        print(
            f"  {name:<44} as given {middle - started:6.3f} s  rarft {done - middle:6.3f} s "
            f"({(middle - started) / (done - middle):5.1f}x)  max |diff| {float(np.abs(given - capped).max()):.1e}"
        )


def report(device: str, results, count: int) -> None:
    print(f"results on {device}:")
    for name, (seconds, latencies) in results.items():
        line = f"  {name:<9} {count / seconds:9.1f} rollouts/s"
        if latencies:
            ordered = sorted(latencies)
            p99 = ordered[int(0.99 * len(ordered)) - 1]
            line += f"  p50 {statistics.median(ordered) * 1e3:7.1f} ms  p99 {p99 * 1e3:7.1f} ms"
        print(line)
    base, ours, ceiling = (results[k][0] for k in ("baseline", "rarft", "ceiling"))
    print(f"  speed-up vs baseline: {base / ours:.2f}x (goal >= 3x)")
    print(f"  fraction of ceiling:  {ceiling / ours:.0%} (goal >= 80%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="one device, or several comma-separated: cpu,cuda")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="sentence-transformers model (default: packaged MiniLM)")
    args = parser.parse_args()

    rollouts = build_rollouts(args.data, args.prompts, args.group)
    model_path = resolve_model(args.model)
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    print(
        f"{len(rollouts)} rollouts ({args.prompts} prompts x G={args.group}), {args.threads} threads, "
        f"devices={devices}, model={model_path}"
    )
    by_device = {device: measure(device, model_path, rollouts, args.threads) for device in devices}
    for device, results in by_device.items():
        report(device, results, len(rollouts))
    for device in devices:
        measure_long_texts(device, model_path, args.data)
    if len(devices) > 1:
        first = devices[0]
        for device in devices[1:]:
            ratio = by_device[first]["rarft"][0] / by_device[device]["rarft"][0]
            print(f"rarft on {device} vs {first}: {ratio:.2f}x rollouts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
