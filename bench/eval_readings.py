"""What the released evaluation's conventions change in the numbers, on the three shipped files.

Writes one deterministic prediction set per shipped file (`predictions`), evaluates each with
`rarft-eval evaluate --data FILE` (`score` in trees from before its rename) from two source trees (a
checkout of the code before the change, and this one) and prints the before -> after table. (The
earlier conventions, the "before reads" column below, were options of 0.1.0 until they were retired:
docs/eval.md keeps the row they gave.)

The prediction set mixes each query's reference with the response shapes whose reading
changed (seeded; shares of the queries):

| relevant query (reference span s-e)                                  | share | released reads    | before reads     |
|----------------------------------------------------------------------|-------|-------------------|------------------|
| think, `<answer>s to e</answer>`, correction (the template)          | 35 %  | s-e               | s-e              |
| the template with a span shifted by 30 % of its length               | 10 %  | shifted           | shifted          |
| think with `<timestep>` ranges, then "from s to e" without tags | 15 % | s-e | the first timestep |
| `<answer>s to e</answer><answer>s+5 to e+5</answer>` (a revision)     | 15 %  | s-e               | s+5-e+5          |
| `<answer>No match.</answer><answer>s to e</answer>`                  | 10 %  | refusal           | s-e              |
| think, `<answer>The video does not show this.</answer>`              | 15 %  | refusal           | refusal          |

| irrelevant query (reference refusal r, or a stock one for SS sets)   | share | released reads    | before reads     |
|----------------------------------------------------------------------|-------|-------------------|------------------|
| think, `<answer>r</answer>`, correction (the template)               | 35 %  | refusal           | refusal          |
| think with `<timestep>` ranges, then "The video does not contain this. r" | 20 % | refusal      | the first timestep |
| `<answer>r</answer><answer>0.00 to 3.00</answer>`                    | 15 %  | refusal           | 0-3              |
| `<answer>s to e</answer><answer>r</answer>` (item span, or 0-3)      | 10 %  | s-e               | refusal          |
| think, `<answer>s to e</answer>`, NIL correction                     | 20 %  | s-e               | s-e              |

The think block is the item's own `think` (HI-Charades: Time-R1-style `<timestep>` captions),
else a one-line stand-in with a timestep.

    git worktree add --detach /tmp/rarft-before f92d1cc
    python bench/eval_readings.py --before /tmp/rarft-before [--out /tmp/eval_readings] [--no-sbert]

With the tree of 9175ec7 as `--before`, the SBERT column gives the change of the SBERT score's texts
to the released ones (docs/eval.md: before -> after per file).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from rarft_eval.predictions import prediction_from_example  # noqa: E402
from rarft_plugin.dataset import Example, load_examples  # noqa: E402
from rarft_plugin.schema import IRRELEVANCE_LEVELS  # noqa: E402

FILES = ("hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json")
STOCK_REFUSAL = "This query is unrelated to the video."
STAND_IN_THINK = "<timestep>0.00 to 3.00</timestep> a person is in the room."
RELEVANT_SHAPES = (
    ("template", 35),
    ("shifted", 10),
    ("untagged", 15),
    ("revised", 15),
    ("refused_first", 10),
    ("wrong_refusal", 15),
)
IRRELEVANT_SHAPES = (("template", 35), ("untagged", 20), ("guess_after", 15), ("guess_first", 10), ("wrong_answer", 20))


def _pick(rng: random.Random, shapes) -> str:
    return rng.choices([name for name, _ in shapes], weights=[share for _, share in shapes])[0]


def _think(example: Example) -> str:
    inner = example.item.think.replace("<think>", "").replace("</think>", "").strip()
    return f"<think>{inner or STAND_IN_THINK}</think>"


def response(example: Example, rng: random.Random) -> str:
    """One response of the shapes in the module docstring."""
    label, think = example.label, _think(example)
    if label.relevant:
        s, e = label.timestamp
        shape = _pick(rng, RELEVANT_SHAPES)
        if shape == "shifted":
            s, e = s + 0.3 * (e - s), e + 0.3 * (e - s)
        return {
            "template": f"{think} <answer>{s:.2f} to {e:.2f}</answer> <correct></correct>",
            "shifted": f"{think} <answer>{s:.2f} to {e:.2f}</answer> <correct></correct>",
            "untagged": f"{think} The event happens from {s:.2f} to {e:.2f}.",
            "revised": f"<answer>{s:.2f} to {e:.2f}</answer><answer>{s + 5:.2f} to {e + 5:.2f}</answer>",
            "refused_first": f"<answer>No match.</answer><answer>{s:.2f} to {e:.2f}</answer>",
            "wrong_refusal": f"{think} <answer>The video does not show this.</answer> <correct>{label.query}</correct>",
        }[shape]
    refusal = label.answer_refusal or STOCK_REFUSAL
    s, e = example.item.timestamp or (0.0, 3.0)
    return {
        "template": f"{think} <answer>{refusal}</answer> <correct>{label.query_relevant}</correct>",
        "untagged": f"{think} The video does not contain this. {refusal}",
        "guess_after": f"<answer>{refusal}</answer><answer>0.00 to 3.00</answer>",
        "guess_first": f"<answer>{s:.2f} to {e:.2f}</answer><answer>{refusal}</answer>",
        "wrong_answer": f"{think} <answer>{s:.2f} to {e:.2f}</answer> <correct>NIL</correct>",
    }[_pick(rng, IRRELEVANT_SHAPES)]


def write_predictions(data: Path, out: Path, seed: int = 0) -> int:
    """The prediction set of one file (JSONL with ids, readable by every version of `rarft-eval`)."""
    examples, _ = load_examples(data)
    rng = random.Random(seed)
    rows = [prediction_from_example(e, response(e, rng)).to_json() for e in examples]
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)


def evaluate_command(tree: Path) -> str:
    """`evaluate`, or `score` in a tree from before the command's rename."""
    return "evaluate" if '"evaluate"' in (tree / "eval" / "cli.py").read_text(encoding="utf-8") else "score"


def score(tree: Path, predictions: Path, data: Path, run: Path, options: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "TQDM_DISABLE": "1"}
    command = evaluate_command(tree)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rarft_eval.cli",
            command,
            str(predictions),
            "--out",
            str(run),
            "--data",
            str(data),
            *options,
        ],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((run / "metrics.json").read_text())


def level_f1(metrics: dict, level: str) -> tuple[float | None, float | None]:
    """(the level F1 the run reports, the 1:1 subset's average F1): the same number before the change,
    the released definition and the extra column after it."""
    row = metrics["by_difficulty"].get(level)
    if row is None:
        return None, None
    if "f1" in row:
        return row["f1"], row["paired"]["relevance"]["f1_avg"]
    return row["relevance"]["f1_avg"], row["relevance"]["f1_avg"]


COLUMNS = [
    ("R@0.3", ("ra_iou", "R@0.3")),
    ("R@0.5", ("ra_iou", "R@0.5")),
    ("R@0.7", ("ra_iou", "R@0.7")),
    ("mIoU", ("ra_iou", "mIoU")),
    ("F1 re.", ("relevance", "f1_rel")),
    ("F1 irre.", ("relevance", "f1_irrel")),
    ("F1 avg.", ("relevance", "f1_avg")),
]


def _get(metrics: dict, path: tuple[str, ...]):
    value = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def cells(metrics: dict, levels: list[str]) -> list[str]:
    out = [_pct(_get(metrics, path)) for _, path in COLUMNS]
    for level in levels:
        reported, paired = level_f1(metrics, level)
        out += [_pct(reported), _pct(paired)]
    sbert = _get(metrics, ("explanation", "sbert", "all"))
    return out + [f"{sbert:.3f}" if sbert is not None else "-"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the code before the change")
    parser.add_argument("--out", type=Path, default=Path("/tmp/eval_readings"))
    parser.add_argument("--no-sbert", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sbert = ["--no-sbert"] if args.no_sbert else []
    runs = [("before", args.before, sbert), ("after (defaults)", REPO, sbert)]
    for name in FILES:
        data = REPO / "eval" / "benchmarks" / name
        predictions = args.out / f"{Path(name).stem}.jsonl"
        count = write_predictions(data, predictions)
        results = [
            (label, score(tree, predictions, data, args.out / f"{Path(name).stem}-{index}", options))
            for index, (label, tree, options) in enumerate(runs)
        ]
        levels = [level for level in IRRELEVANCE_LEVELS if level in results[-1][1]["by_difficulty"]]
        header = [
            "run",
            *(c for c, _ in COLUMNS),
            *(f"{level} {kind}" for level in levels for kind in ("F1", "F1 1:1")),
            "SBERT",
        ]
        print(f"\n### {name} ({count} predictions)\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for label, metrics in results:
            print("| " + " | ".join([label, *cells(metrics, levels)]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
