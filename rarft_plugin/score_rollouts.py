"""`rarft-score`: the RA-RFT reward breakdown of saved rollouts, as a table and as JSONL.

Each input line is a rollout: `{"response": str, "label": {...}}` with a label in the schema of
`rarft_plugin.schema`, or `{"response": str, "data": FILE, "example": "ITEM:QUERY"}` pointing at
one query of a released-schema file (relative paths are resolved next to the rollouts file).
Extra fields (e.g. `note`) are carried through. Output: one line per rollout with its input
fields plus `rewards`: a value per reward of the table (`rarft_plugin.rewards.REWARD_NAMES`) and `total`.

    rarft-score rollouts.jsonl --out rewards.jsonl [--variant released] [--weights explain=0.5]

The reward options are those of `rarft_plugin.reward_options` (`--help` lists them with the reward
table); unlike rarft-train, rarft-score does not read RARFT_VARIANT, RARFT_CORRECTION,
RARFT_EXPLAIN or RARFT_REWARD_WEIGHTS, so a score names its options on its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rarft_plugin.cli import ArgumentParser, command_line, entry_point
from rarft_plugin.command_files import CommandFiles, claim
from rarft_plugin.dataset import Example, load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_jsonl, write_jsonl_atomic
from rarft_plugin.reward_options import RewardOptions, ScoreOptions, reward_table
from rarft_plugin.reward_options import add_arguments as add_reward_arguments
from rarft_plugin.rewards import REWARD_NAMES, score_many
from rarft_plugin.schema import Label, label_problems, parse_label

__all__ = ["add_arguments", "format_table", "load_rollouts", "main", "run", "score_rollouts"]

CHUNK = 256


def load_rollouts(path: Path) -> list[tuple[dict[str, Any], Label]]:
    """Rollouts with their validated labels; errors name the file, line and field.

    A label given in the rollout must also be one to score (`rarft_plugin.schema.label_problems`: a span
    its video can hold, text only); one pointing into a released-schema file is as that file loads it.
    """
    examples_by_file: dict[Path, dict[str, Example]] = {}
    rollouts = []
    for number, row in read_jsonl(path):
        where = {"source": str(path), "record": f"line {number}"}
        if not isinstance(row.get("response"), str):
            raise DataError("must be a string", field="response", **where)
        if "label" in row:
            label = parse_label(row["label"], **where)
            problems = label_problems(label)  # what a file of examples refuses on load is refused here too
            if problems:
                raise problems[0].located(**where)
        elif "data" in row and "example" in row:
            data = (path.parent / str(row["data"])).resolve()
            if data not in examples_by_file:
                examples, _ = load_examples(data)
                examples_by_file[data] = {e.key: e for e in examples}
            example = examples_by_file[data].get(str(row["example"]))
            if example is None:
                raise DataError(f"no example {row['example']!r} in {data}", field="example", **where)
            label = example.label
        else:
            raise DataError("needs either 'label' or both 'data' and 'example'", **where)
        rollouts.append((row, label))
    if not rollouts:
        raise DataError("no rollouts: the file has no non-blank line", source=str(path))
    return rollouts


def score_rollouts(rollouts: list[tuple[dict[str, Any], Label]], options: ScoreOptions) -> list[dict[str, Any]]:
    results = []
    for start in tqdm(range(0, len(rollouts), CHUNK), desc="scoring", unit="chunk", disable=len(rollouts) <= CHUNK):
        chunk = rollouts[start : start + CHUNK]
        scores = score_many([row["response"] for row, _ in chunk], [label for _, label in chunk], **options)
        for (row, label), rewards in zip(chunk, scores, strict=True):
            results.append({**row, "label": label.to_json(), "rewards": rewards})
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    """A fixed-width table: one row per rollout."""
    header = (
        f"{'#':>3}  {'query':<34} {'rel':<5} {'difficulty':<10} "
        + " ".join(f"{name:>10}" for name in (*REWARD_NAMES, "total"))
        + "  note"
    )
    lines = [header, "-" * len(header)]
    for index, row in enumerate(results, start=1):
        label, rewards = row["label"], row["rewards"]
        query = label["query"] if len(label["query"]) <= 34 else label["query"][:31] + "..."
        lines.append(
            f"{index:>3}  {query:<34} {'yes' if label['relevant'] else 'no':<5} {label['difficulty'] or '-':<10} "
            + " ".join(f"{rewards[name]:>10.3f}" for name in (*REWARD_NAMES, "total"))
            + f"  {row.get('note', '')}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollouts", type=Path, help="rollouts JSONL")
    parser.add_argument("--out", type=Path, required=True, help="where to write the scored JSONL")
    add_reward_arguments(parser, "plain", environment=False)
    parser.add_argument("--quiet", action="store_true", help="do not print the table")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    options = RewardOptions.from_args(args, environ={})
    rollouts = load_rollouts(args.rollouts)
    results = score_rollouts(rollouts, options.score_options())
    write_jsonl_atomic(args.out, results)
    if not args.quiet:
        print(format_table(results))
    print(
        f"{len(results)} rollouts scored ({options.variant} rewards, {options.correction} correction, "
        f"{options.explain} explain) -> {args.out}"
    )
    return results


@entry_point("rarft-score")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="rarft-score",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The rewards (rarft_plugin.rewards):\n" + reward_table(),
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        with claim(
            CommandFiles.of(inputs=[args.rollouts], outputs=[args.out]), holder=command_line("rarft-score", argv)
        ):
            run(args)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"rarft-score: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
