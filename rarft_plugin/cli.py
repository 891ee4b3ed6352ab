"""What every rarft command line shares: Ctrl-C ends it with one line and exit status 130; deepspeed
told the CPU on a machine without a GPU (`cpu_deepspeed`).

@entry_point("rarft-prep")
def main(argv=None) -> int: ...
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

__all__ = [
    "INTERRUPTED",
    "cpu_deepspeed",
    "entry_point",
]

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


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
