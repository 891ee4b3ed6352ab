"""What every rarft command line shares: Ctrl-C ends it with one line and exit status 130; a usage error
is one line too (`ArgumentParser`), a retired option or subcommand as well, naming what replaced it
(`retire`, `dispatch`'s `retired`); a command of several subcommands is a table dispatched to their modules
(`dispatch`); deepspeed told the CPU on a machine without a GPU (`cpu_deepspeed`).

@entry_point("rarft-prep")
def main(argv=None) -> int: ...
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable, Mapping

from rarft_plugin.command_files import claim
from rarft_plugin.errors import DataError

__all__ = [
    "INTERRUPTED",
    "ArgumentParser",
    "command_line",
    "cpu_deepspeed",
    "dispatch",
    "entry_point",
    "retire",
]

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage error is one line (the message, and where the options are listed)
    instead of the usage block, exit status 2; its subcommands' parsers are of this class too.

    >>> ArgumentParser(prog="rarft-x").error("argument --n: must be at least 1, got 0")
    Traceback (most recent call last):
    SystemExit: 2
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def retire(parser: argparse.ArgumentParser, option: str, replacement: str) -> None:
    """Keep a retired `option` as a one-line usage error saying what replaced it (exit status 2, before any
    work); --help no longer lists it.

    >>> parser = ArgumentParser(prog="rarft-x")
    >>> retire(parser, "--old", "use --new")
    >>> parser.parse_args(["--old", "value"])
    Traceback (most recent call last):
    SystemExit: 2
    """

    class Retired(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string} is retired: {replacement}")

    parser.add_argument(option, nargs="?", action=Retired, dest=argparse.SUPPRESS, help=argparse.SUPPRESS)


def command_line(prog: str, argv: list[str] | None) -> str:
    """The command as typed (`argv` None: this process's own), to name a process to another one."""
    return " ".join([prog, *(sys.argv[1:] if argv is None else argv)])


def entry_point(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI `main`: a KeyboardInterrupt prints `PROG: interrupted` (no traceback) and returns 130.

    Work already finished stays finished: the commands write their outputs atomically and keep
    resumable state (journals, appended predictions) consistent at every moment.
    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return INTERRUPTED

        return wrapped

    return decorate


def dispatch(
    prog: str,
    description: str,
    commands: Mapping[str, tuple[str, str]],
    argv: list[str] | None,
    *,
    failures: Mapping[type[Exception], int] | None = None,
    retired: Mapping[str, str] | None = None,
    package: str | None = None,
) -> int:
    """Run the subcommand `argv[0]` of `prog`: `commands` maps its name to (module, one-line help); a module name
    starting with "." is relative to `package` (the command line's own, whatever name it is installed under).

    The module owns `add_arguments(parser)`, `command_files(args)` (what it reads and writes, checked and
    locked before it runs: `rarft_plugin.command_files`) and `run(args) -> int`. Only the chosen module is
    imported, so one command's dependencies never slow or break another. An error of `failures` (exception
    type -> exit status, first match; default: a `DataError` exits 2) is one line naming the command. A
    `retired` subcommand (name -> what replaced it) is a one-line usage error.
    """
    failures = failures or {DataError: 2}
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if argv and argv[0] in (retired or {}):
        parser.error(f"`{argv[0]}` is retired: {retired[argv[0]]}")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        parser.parse_args(argv)  # prints help / the usage error and exits
    name = argv[0]
    module = importlib.import_module(commands[name][0], package)
    command_parser = ArgumentParser(prog=f"{prog} {name}", description=commands[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        with claim(module.command_files(args), holder=command_line(prog, argv)):
            return module.run(args)
    except tuple(failures) as error:
        print(f"{prog} {name}: error: {error}", file=sys.stderr)
        return next(status for kind, status in failures.items() if isinstance(error, kind))


def cpu_deepspeed() -> None:
    """On a machine without a GPU, tell deepspeed to use the CPU before anything imports it.

    transformers imports deepspeed (through accelerate) where it is installed, as the CPU
    environment of `make setup` has it for OpenRLHF's argument parser; deepspeed, finding no GPU,
    takes the CPU anyway but first warns about it on stdout. Call before importing transformers'
    models or OpenRLHF; a GPU machine is left to deepspeed's own detection.
    """
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
