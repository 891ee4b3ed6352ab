"""`rarft-audit`'s scoring against scoring the same rollouts one by one with `score`, same run, same model.

Workload: the first N queries of the released HI-Charades file, every policy of `rarft_eval.exploits`,
every reward setting the audit runs by default (paper / released x similarity / contrastive / gain).

- audit: `rarft_eval.audit.score_policies`, one `score_many` per policy and setting over all queries;
- one by one: `rarft_plugin.rewards.score` called once per rollout, the way a loop over saved
  rollouts would score them, with the same cached `SentenceSimilarity` class (a fresh one, so
  both start cold; the cache still saves it from encoding a reference twice).

Both must give the same rewards (checked). Prints rollouts/s of each and their ratio.

    python bench/audit_throughput.py [--queries 200] [--device cpu] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TQDM_DISABLE", "1")  # a progress bar would interleave with the figures

from rarft_eval.audit import load_labels, score_policies, settings_from  # noqa: E402
from rarft_eval.exploits import CORRECTION_TAG, POLICIES, neighbours  # noqa: E402
from rarft_plugin.rewards import REWARD_NAMES, parse_weights, score  # noqa: E402
from rarft_plugin.similarity import SentenceSimilarity, resolve_model  # noqa: E402

DATA = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"


def cold_similarity(model: str, device: str) -> SentenceSimilarity:
    similarity = SentenceSimilarity(model, device)
    similarity._model.encode(["warm up"] * 8, show_progress_bar=False)  # outside the timings
    return similarity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="sentence-transformers model (default: packaged MiniLM)")
    args = parser.parse_args()

    loaded, _ = load_labels(DATA)
    labels = [query.label for query in loaded[: args.queries]]
    settings = settings_from("paper,released", "similarity,contrastive,gain")
    weights = parse_weights(None)
    model = resolve_model(args.model)
    rollouts = len(labels) * len(POLICIES) * len(settings)
    print(
        f"{len(labels)} queries x {len(POLICIES)} policies x {len(settings)} settings = {rollouts} rollouts, "
        f"device {args.device}, model {model}"
    )

    similarity = cold_similarity(model, args.device)
    started = time.perf_counter()
    batched = score_policies(labels, settings, similarity=similarity, weights=weights)
    audit_s = time.perf_counter() - started
    print(
        f"  audit:      {rollouts / audit_s:8.1f} rollouts/s ({audit_s:.1f} s; {similarity.encoded_texts} texts "
        f"in {similarity.encode_calls} encodes)"
    )

    similarity = cold_similarity(model, args.device)
    others = neighbours(labels)
    started = time.perf_counter()
    single = {
        s.name: {
            p.name: [
                score(
                    p.write(label, CORRECTION_TAG[s.variant], other),
                    label,
                    variant=s.variant,
                    correction=s.correction,
                    explain=s.explain,
                    weights=weights,
                    similarity=similarity,
                )
                for label, other in zip(labels, others, strict=True)
            ]
            for p in POLICIES
        }
        for s in settings
    }
    single_s = time.perf_counter() - started
    print(
        f"  one by one: {rollouts / single_s:8.1f} rollouts/s ({single_s:.1f} s; {similarity.encoded_texts} texts "
        f"in {similarity.encode_calls} encodes)"
    )

    worst = max(
        abs(batched[s][p][i][name] - single[s][p][i][name])
        for s in single
        for p in single[s]
        for i in range(len(labels))
        for name in (*REWARD_NAMES, "total")
    )
    print(f"  same rewards: largest difference {worst:.2e}")
    print(f"  audit vs one by one: {single_s / audit_s:.1f}x rollouts/s")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
