"""What the rollout logs (task score, task quantities, exploit signals) add to the reward, per rollout.

Workload: `bench/reward_throughput.py`'s 1,024 rollouts (128 HI-Charades prompts x G=8, realistic refusals,
segments and corrections; half the prompts irrelevant), prompts built with the ra_rft instruction, one
sample per call from 8 threads as OpenRLHF's workers call the reward file. In the same run, same model and
device, each on its own encoder with a cold cache, then again on that encoder (warm: a later epoch):

- baseline: the reward file before the rollout logs: `score_many` per call, the total as the score;
- rollout logs: `rarft_plugin.openrlhf_reward.reward_func` (`score_with_logs`: the same rewards plus the
  score and the extra logs; the signals' pairs join the reward's one encoder call).

The two alternate `--repeats` times (baseline first, then the other way round); the best of each is kept.

    python bench/rollout_logs_cost.py [--device cpu] [--threads 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.reward_throughput import DEFAULT_DATA, build_rollouts, run_calls  # noqa: E402
from rarft_plugin.parsing import extract_response  # noqa: E402
from rarft_plugin.rewards import score_many  # noqa: E402
from rarft_plugin.similarity import SentenceSimilarity, resolve_model  # noqa: E402


def baseline_call(similarity):
    def call(rollout):
        query, prompt, label = rollout
        results = score_many([extract_response(query, prompt)], [label], similarity=similarity)
        return results[0]["total"], results[0]["total"]  # rewards, scores: the total twice, as before

    return call


def rollout_logs_call(similarity):
    import rarft_plugin.openrlhf_reward as entry

    options = {"variant": "paper", "weights": None, "similarity": similarity, "correction": "similarity"}

    def call(rollout):
        entry._OPTIONS = options
        return entry.reward_func([rollout[0]], [rollout[1]], [rollout[2]])

    return call


def measure(name, make_call, model_path, device, rollouts, threads):
    """(cold seconds, warm seconds, texts encoded, encoder calls) of one setting on a fresh encoder."""
    similarity = SentenceSimilarity(model_path, device=device)
    similarity._model.encode(["warm up"] * 8, show_progress_bar=False)  # model warm-up, outside the timing
    call = make_call(similarity)
    cold, _ = run_calls(call, rollouts, threads)
    encoded, calls = similarity.encoded_texts, similarity.encode_calls
    warm, _ = run_calls(call, rollouts, threads)
    print(
        f"  {name:<12} cold {len(rollouts) / cold:7.1f} rollouts/s, warm {len(rollouts) / warm:7.1f} rollouts/s; "
        f"cold: {encoded} texts encoded in {calls} encoder calls",
        flush=True,
    )
    return cold, warm, encoded, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    rollouts = build_rollouts(args.data, args.prompts, args.group, template="ra_rft")
    model_path = resolve_model(args.model)
    print(f"{len(rollouts)} rollouts ({args.prompts} prompts x G={args.group}), {args.threads} threads, {args.device}")
    settings = {"baseline": baseline_call, "rollout logs": rollout_logs_call}
    runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in settings}
    for repeat in range(args.repeats):
        order = list(settings) if repeat % 2 == 0 else list(reversed(settings))
        print(f"repeat {repeat + 1}:")
        for name in order:
            runs[name].append(measure(name, settings[name], model_path, args.device, rollouts, args.threads))
    count = len(rollouts)
    best = {name: (min(r[0] for r in results), min(r[1] for r in results)) for name, results in runs.items()}
    (base_cold, base_warm), (ours_cold, ours_warm) = best["baseline"], best["rollout logs"]
    print("best of the repeats:")
    for label, base, ours in (("cold", base_cold, ours_cold), ("warm", base_warm, ours_warm)):
        print(
            f"  {label}: baseline {1e3 * base / count:.2f} ms/rollout, rollout logs "
            f"{1e3 * ours / count:.2f} ms/rollout (wall time / rollouts, {args.threads} threads): x{ours / base:.2f}, "
            f"+{1e3 * (ours - base) / count:.2f} ms per rollout"
        )
    extra = runs["rollout logs"][0][2] - runs["baseline"][0][2]
    print(
        f"  texts encoded beyond the reward's: {extra} ({extra / count:.2f} per rollout; the query and its "
        "templated refusal, once per irrelevant prompt)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
