"""The evaluation's readings of a response on pathological text: time against size, up to 1 MB.

`rarft_plugin.parsing.evaluation_answer` and `without_correction` are what `rarft-eval evaluate` runs
on every prediction (`rarft_eval.reading.read`). The released evaluation reads with lazy regexes
(`RELEASED_THINK_PATTERN`, `RELEASED_ANSWER_PATTERN`, `RELEASED_CORRECTION_PATTERN`, through
`re.sub` / `re.search`), which scan to the end of the text once per tag that is opened and never
closed: quadratic. rarft reads the same blocks in one pass. Both run here on the same texts, in the
same process; the regexes only up to `--baseline-max` characters (1 MB would take minutes).

Texts (each cut to the size):

| name           | text                                                    |
|----------------|---------------------------------------------------------|
| think_open     | `<think>` repeated: every think block opened, none closed |
| answer_open    | `<answer>` repeated                                      |
| correct_open   | `<correct><correction>` repeated                         |
| closed_blocks  | `<think>a</think><answer>b</answer><correct>c</correct>` repeated (many complete blocks) |
| mixed          | closed blocks, then unclosed think / correct openings    |
| template       | one template response whose think block is padded to the size |

For each text and size: seconds per call (best of `--repeats`), the growth per decade of size
(10x the characters: ~10 for linear, ~100 for quadratic) and the regex / rarft ratio.

    python bench/parsing_scaling.py [--sizes 1000,10000,100000,1000000] [--baseline-max 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rarft_plugin.parsing import (  # noqa: E402
    RELEASED_ANSWER_PATTERN,
    RELEASED_CORRECTION_PATTERN,
    RELEASED_THINK_PATTERN,
    evaluation_answer,
    without_correction,
)

_THINK = re.compile(RELEASED_THINK_PATTERN, re.DOTALL)
_ANSWER = re.compile(RELEASED_ANSWER_PATTERN, re.DOTALL)
_CORRECTION = re.compile(RELEASED_CORRECTION_PATTERN, re.DOTALL)

CLOSED = "<think>a</think><answer>b</answer><correct>c</correct>"


def repeat(unit: str, size: int) -> str:
    """`unit` repeated to exactly `size` characters."""
    return (unit * (size // len(unit) + 1))[:size]


TEXTS: dict[str, Callable[[int], str]] = {
    "think_open": lambda n: repeat("<think>", n),
    "answer_open": lambda n: repeat("<answer>", n),
    "correct_open": lambda n: repeat("<correct><correction>", n),
    "closed_blocks": lambda n: repeat(CLOSED, n),
    "mixed": lambda n: repeat(CLOSED, n // 2) + repeat("<think><correct>", n - n // 2),
    "template": lambda n: "<think>" + "x" * max(0, n - 60) + "</think> <answer>2 to 6</answer> <correct>NIL</correct>",
}


def regex_readings(text: str) -> tuple[str, str]:
    """The released evaluation's two readings (first answer after think removal; correction removed)."""
    without_think = _THINK.sub("", text)
    match = _ANSWER.search(without_think)
    answer = (match.group(1) if match else without_think).strip()
    return answer, _CORRECTION.sub("", text).strip()


def rarft_readings(text: str) -> tuple[str, str]:
    return evaluation_answer(text), without_correction(text)


def best_time(function: Callable[[str], object], text: str, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        function(text)
        best = min(best, time.perf_counter() - started)
    return best


def per_decade(times: list[tuple[int, float]]) -> str:
    """Growth of the time per 10x of size, from the first to the last size measured."""
    if len(times) < 2 or times[0][1] <= 0:
        return "-"
    (n0, t0), (n1, t1) = times[0], times[-1]
    return f"{(t1 / t0) ** (1 / math.log10(n1 / n0)):.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="text sizes in characters")
    parser.add_argument("--baseline-max", type=int, default=100_000, help="largest size the regexes are run on")
    parser.add_argument("--repeats", type=int, default=3, help="calls per measurement (the best is kept)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print("| text | size | rarft s | regex s | regex / rarft |")
    print("|---|---:|---:|---:|---:|")
    growth = []
    for name, make in TEXTS.items():
        ours, theirs = [], []
        for size in sizes:
            text = make(size)
            mine = best_time(rarft_readings, text, args.repeats)
            ours.append((len(text), mine))
            if size <= args.baseline_max:
                assert rarft_readings(text) == regex_readings(text), name  # same readings, or the timing means nothing
                # one call at the largest sizes: the regexes take seconds there
                released = best_time(regex_readings, text, args.repeats if size < args.baseline_max else 1)
                theirs.append((len(text), released))
                print(f"| {name} | {len(text):,} | {mine:.5f} | {released:.5f} | {released / mine:.3g} |")
            else:
                print(f"| {name} | {len(text):,} | {mine:.5f} | (not run) | |")
        growth.append((name, per_decade(ours), per_decade(theirs)))
    print("\nTime growth per decade of size (10x the characters; linear ~10x, quadratic ~100x):\n")
    print("| text | rarft | regex |")
    print("|---|---:|---:|")
    for name, mine, released in growth:
        print(f"| {name} | {mine} | {released} |")


if __name__ == "__main__":
    main()
