"""What each correction and explain reward pays the honest and the cheap answers of the released HI-Charades file.

Correction classes (every irrelevant query; `rarft_eval.exploits` builds them): the copy (ĉ = q), a
generic sentence, a partial fix (half of the word edits from q to q_r restored; only the queries
more than one edit away), a synonym paraphrase of q_r, and q_r itself; under eq. 7 (paper and
released), the contrastive and the gain correction. Explanation classes: the query in the refusal
template, the query pasted, the reference's first sentence (its opener), another video's reference
refusal, and the reference itself; under eq. 6 (paper and released) and the debiased explanation.

Per class and reward: the mean, the share of queries below 0, at the top of the range, and (for
corrections) below the copy; for explanations the mean as a share of the oracle's. The
packaged MiniLM on the CPU; the rewards through `rarft_plugin.rewards.score_many`.

    python bench/correction_classes.py [--queries N] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

from rarft_eval.audit import load_labels  # noqa: E402
from rarft_eval.exploits import (  # noqa: E402
    CORRECTION_TAG,
    GENERIC_CORRECTION,
    first_sentence,
    neighbours,
    paraphrase,
    partial_fix,
    render,
    templated_refusal,
)
from rarft_plugin.rewards import GAIN_MIN_GAP, score_many  # noqa: E402
from rarft_plugin.similarity import get_similarity  # noqa: E402

DATA = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"
CORRECTIONS = {
    "eq. 7 (paper)": ("paper", "similarity"),
    "eq. 7 (released)": ("released", "similarity"),
    "contrastive": ("paper", "contrastive"),
    "gain": ("paper", "gain"),
}
EXPLAINS = {"eq. 6 (paper)": ("paper", "similarity"), "eq. 6 (released)": ("released", "similarity")}
EXPLAINS["debiased"] = ("paper", "debiased")


def correction_classes(label):
    return {
        "copy": label.query,
        "generic": GENERIC_CORRECTION,
        "partial fix": partial_fix(label.query, label.query_relevant),
        "paraphrase": paraphrase(label.query_relevant),
        "q_r": label.query_relevant,
    }


def explain_classes(label, neighbour):
    return {
        "template": templated_refusal(label),
        "pasted query": label.query,
        "reference opener": first_sentence(label.answer_refusal),
        "other video's refusal": neighbour.answer_refusal,
        "oracle": label.answer_refusal,
    }


def component(similarity, labels, texts, variant, options, field):
    """One reward component of `score_many` for the answers (field "explain") or corrections written."""
    tag = CORRECTION_TAG[variant]
    responses = [render(t, "x", tag) if field == "explain" else render("no", t, tag) for t in texts]
    rows = score_many(responses, labels, variant=variant, similarity=similarity, **options)
    return np.array([row[field] for row in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=None, help="the first N irrelevant queries (default: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    similarity = get_similarity(None, args.device)
    loaded, _ = load_labels(DATA)
    labels = [q.label for q in loaded if not q.label.relevant][: args.queries]
    gaps = 1 - np.array(
        get_similarity(None, args.device).cosine_pairs([(label.query_relevant, label.query) for label in labels])
    )
    print(f"{len(labels)} irrelevant queries of {DATA.name}; packaged MiniLM on {args.device} (2-core CPU)")
    print(f"gain: 1 - sim(q_r, q) < {GAIN_MIN_GAP} (no weight) for {np.mean(gaps < GAIN_MIN_GAP):.1%} of them\n")

    print("| class | queries | " + " | ".join(CORRECTIONS) + " |")
    print("|---|---|" + "---|" * len(CORRECTIONS))
    written = [correction_classes(label) for label in labels]
    copies = {
        name: component(similarity, labels, [w["copy"] for w in written], v, {"correction": c}, "correction")
        for name, (v, c) in CORRECTIONS.items()
    }
    for cls in ("copy", "generic", "partial fix", "paraphrase", "q_r"):
        keep = [i for i, w in enumerate(written) if w[cls] is not None]
        part = [labels[i] for i in keep]
        cells = []
        for name, (variant, mode) in CORRECTIONS.items():
            values = component(
                similarity, part, [written[i][cls] for i in keep], variant, {"correction": mode}, "correction"
            )
            top = 1.0
            below_copy = np.mean(values < copies[name][keep] - 1e-9)
            cells.append(
                f"{values.mean():+.3f} (<0 {np.mean(values < 0):.0%}, top {np.mean(values >= top - 1e-6):.0%}, "
                f"<copy {below_copy:.0%})"
            )
        print(f"| {cls} | {len(keep)} | " + " | ".join(cells) + " |")

    print("\n| class | " + " | ".join(EXPLAINS) + " |")
    print("|---|" + "---|" * len(EXPLAINS))
    others = neighbours(labels)
    answers = [explain_classes(label, other) for label, other in zip(labels, others, strict=True)]
    oracle = {
        name: component(similarity, labels, [a["oracle"] for a in answers], v, {"explain": e}, "explain").mean()
        for name, (v, e) in EXPLAINS.items()
    }
    for cls in ("template", "pasted query", "reference opener", "other video's refusal", "oracle"):
        cells = []
        for name, (variant, mode) in EXPLAINS.items():
            values = component(similarity, labels, [a[cls] for a in answers], variant, {"explain": mode}, "explain")
            cells.append(
                f"{values.mean():+.3f} ({values.mean() / oracle[name]:.0%} of the oracle, "
                f"<=0 {np.mean(values <= 1e-9):.0%})"
            )
        print(f"| {cls} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
