"""`rarft-eval`: inference on a checkpoint, evaluating its predictions, comparing runs.

    rarft-eval infer --model CKPT --data hi_vtg_charades.json --video-root VIDEOS --out preds.jsonl
    rarft-eval evaluate preds.jsonl [more shards ...] --out run/ [--judge llm] [--llm-explanations]
                        [--base-url URL --model NAME]
    rarft-eval compare runA/ runB/ [more runs ...] [--paper [DATASET|TABLE]]

Each subcommand lives in its own module exposing `add_arguments(parser)`, `command_files(args)` and
`run(args) -> int`; this file only dispatches (`rarft_plugin.cli.dispatch`). `score`, the former name of
`evaluate`, is retired: it says so in one line.
"""

from __future__ import annotations

import sys

from rarft_plugin.cli import dispatch, entry_point
from rarft_plugin.errors import DataError

__all__ = ["COMMANDS", "RETIRED", "main"]

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "infer": (".infer", "predict with a checkpoint"),
    "evaluate": (".evaluate", "every metric of the paper, and a report"),
    "compare": (".compare", "runs side by side per dataset, with the paper's rows"),
}
# retired subcommand -> what replaced it (a one-line usage error)
RETIRED = {"score": "use `rarft-eval evaluate` (same arguments; in rarft a score is what a reward gives)"}


@entry_point("rarft-eval")
def main(argv: list[str] | None = None) -> int:
    from rarft_plugin.llm_client import LLMError

    from .judge import JudgeUnavailable

    # a bad input exits 2; the judge endpoint down, or no usable verdict, 1
    failures = {DataError: 2, JudgeUnavailable: 1, LLMError: 1}
    return dispatch(
        "rarft-eval", __doc__.splitlines()[0], COMMANDS, argv, failures=failures, retired=RETIRED, package=__package__
    )


if __name__ == "__main__":
    sys.exit(main())
