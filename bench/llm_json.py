"""Reading JSON out of LLM replies (`rarft_plugin.llm_json.json_object`): cost per character against size.

The baseline, measured in the same run, is the reader before it became one scan: it balanced the
brackets, then read every balanced run on its own with `json.loads` / `ast.literal_eval`, so a
reply nested d levels deep was read d times (quadratic). It is loaded from git (`--baseline REV`,
default the last commit with it), so the two run on the same machine, interpreter and inputs.

Shapes (each asked for a key it does not hold, so the whole reply is searched):

- `objects`: `{"a": {"a": ... 1 ...}}`, nested objects;
- `objects+arrays`: `{"a": [{"a": [... 1 ...]}]}`;
- `python, invalid`: `{'a': {'a': ... x ...}}`, no level a literal (each read fails);
- `table 14 replies`: a well-formed generation answer (three plans) repeated side by side: flat text,
  the common case.

Sizes grow by 4x; the baseline stops at the first size where one reply takes it longer than
`--baseline-budget` seconds. Prints microseconds per character for each, and baseline / ours.

    python bench/llm_json.py [--max-chars 1024000] [--baseline 9175ec7] [--baseline-budget 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.hi_vtg_llm import generation_reply  # noqa: E402

from rarft_plugin import llm_json  # noqa: E402

BASELINE = "9175ec7"  # the last commit whose rarft_plugin/llm_json.py read every balanced run on its own
TABLE_14 = generation_reply()

SHAPES: dict[str, Callable[[int], str]] = {
    "objects": lambda chars: '{"a": ' * (chars // 7) + "1" + "}" * (chars // 7),
    "objects+arrays": lambda chars: '{"a": [' * (chars // 9) + "1" + "]}" * (chars // 9),
    "python, invalid": lambda chars: "{'a': " * (chars // 7) + "x" + "}" * (chars // 7),
    "table 14 replies": lambda chars: " ".join([TABLE_14] * max(1, chars // (len(TABLE_14) + 1))),
}


def load_baseline(revision: str) -> types.ModuleType:
    """rarft_plugin/llm_json.py as of `revision`, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:rarft_plugin/llm_json.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("llm_json_baseline")
    exec(compile(source, f"{revision}:rarft_plugin/llm_json.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def seconds(read: Callable[..., object], reply: str, error: type[Exception], repeat: int) -> float:
    """The best of `repeat` readings of `reply`, asking for a key it lacks."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            read(reply, ("missing",))
        except error:
            pass
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-chars", type=int, default=1_024_000)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline reader")
    parser.add_argument("--baseline-budget", type=float, default=20.0, help="seconds one baseline reply may take")
    args = parser.parse_args()
    baseline = load_baseline(args.baseline)
    sizes = []
    size = 1000
    while size <= args.max_chars:
        sizes.append(size)
        size *= 4
    print(f"json_object on replies asking for a key they lack; baseline: {args.baseline}; µs per character")
    print(f"{'shape':18s} {'chars':>9s} {'baseline':>10s} {'ours':>8s} {'baseline/ours':>14s}")
    for name, make in SHAPES.items():
        baseline_on = True
        for size in sizes:
            reply = make(size)
            repeat = 3 if len(reply) < 100_000 else 1
            ours = seconds(llm_json.json_object, reply, llm_json.UnreadableReply, repeat)
            if baseline_on:
                theirs = seconds(baseline.json_object, reply, baseline.UnreadableReply, repeat)
                baseline_on = theirs < args.baseline_budget
                cells = f"{theirs / len(reply) * 1e6:10.2f} {ours / len(reply) * 1e6:8.2f} {theirs / ours:13.1f}x"
            else:
                cells = f"{'-':>10s} {ours / len(reply) * 1e6:8.2f} {'-':>14s}"
            print(f"{name:18s} {len(reply):9d} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
