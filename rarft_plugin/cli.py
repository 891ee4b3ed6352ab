"""What every rarft command line shares: Ctrl-C ends it with one line and exit status 130; a usage error
is one line too (`ArgumentParser`); deepspeed told the CPU on a machine without a GPU (`cpu_deepspeed`).

@entry_point("rarft-prep")
def main(argv=None) -> int: ...
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

__all__ = [
    "INTERRUPTED",
    "ArgumentParser",
    "command_line",
    "cpu_deepspeed",
    "entry_point",
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
