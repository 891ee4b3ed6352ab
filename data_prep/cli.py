"""`rarft-prep`: dataset preparation commands.

Each subcommand lives in its own module exposing `add_arguments(parser)`, `command_files(args)` and
`run(args) -> int`; this file only dispatches (`rarft_plugin.cli.dispatch`).
"""

from __future__ import annotations

import sys

from rarft_plugin.cli import dispatch, entry_point

__all__ = [
    "COMMANDS",
    "main",
]

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "to-openrlhf": (".to_openrlhf", "convert a released-schema file to OpenRLHF prompt JSONL with videos"),
    "hi-vtg": (".hi_vtg", "build HI-VTG hard-irrelevant queries and refusal answers with an LLM"),
    "ss-vtg": (".ss_vtg", "build SS-VTG simply-shuffled irrelevant queries"),
    "split": (".splits", "make seeded training (1:3) / evaluation (1:1) splits"),
    "repair-tvgbench": (".repair", "restore HI-TVGBench clip spans from Time-R1's TVGBench annotation"),
    "debias": (".debias", "drop the irrelevant queries whose text alone gives them away (leakage filter)"),
}


@entry_point("rarft-prep")
def main(argv: list[str] | None = None) -> int:
    return dispatch("rarft-prep", __doc__.splitlines()[0], COMMANDS, argv, package=__package__)


if __name__ == "__main__":
    sys.exit(main())
