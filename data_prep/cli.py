"""`rarft-prep`: dataset preparation commands.

Each subcommand lives in its own module exposing `add_arguments(parser)`, `command_files(args)`
(what it reads and writes, checked and locked before it runs: `rarft_plugin.command_files`) and
`run(args) -> int`; this file only dispatches (modules are imported lazily so one command's
dependencies never slow or break another).
"""

from __future__ import annotations

import importlib
import sys

from rarft_plugin.cli import ArgumentParser, command_line, entry_point
from rarft_plugin.command_files import claim
from rarft_plugin.errors import DataError

__all__ = [
    "COMMANDS",
    "main",
]

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "to-openrlhf": ("data_prep.to_openrlhf", "convert a released-schema file to OpenRLHF prompt JSONL with videos"),
    "hi-vtg": ("data_prep.hi_vtg", "build HI-VTG hard-irrelevant queries and refusal answers with an LLM"),
    "ss-vtg": ("data_prep.ss_vtg", "build SS-VTG simply-shuffled irrelevant queries"),
    "split": ("data_prep.splits", "make seeded training (1:3) / evaluation (1:1) splits"),
    "repair-tvgbench": ("data_prep.repair", "restore HI-TVGBench clip spans from Time-R1's TVGBench annotation"),
    "debias": ("data_prep.debias", "drop the irrelevant queries whose text alone gives them away (leakage filter)"),
}


@entry_point("rarft-prep")
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(prog="rarft-prep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help / the usage error and exits
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    command_parser = ArgumentParser(prog=f"rarft-prep {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        with claim(module.command_files(args), holder=command_line("rarft-prep", argv)):
            return module.run(args)
    except DataError as error:
        print(f"rarft-prep {name}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
