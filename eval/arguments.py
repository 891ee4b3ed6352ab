"""The command-line arguments `rarft-eval infer` and `rarft-eval evaluate` share: how the evaluation file's
relevant queries without a span of their own are handled. Both commands import this module; it imports
neither."""

from __future__ import annotations

import argparse
from pathlib import Path

from rarft_plugin.dataset import UNKNOWN_SPAN_CHOICES
from rarft_plugin.errors import DataError

__all__ = ["add_data_arguments", "data_options"]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--spans-from and --unknown-spans."""
    parser.add_argument(
        "--spans-from",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="another released file whose items give the span of a relevant query the evaluation "
        "file lacks (same video and query; repeatable), e.g. hi_vtg_charades.json for "
        "ss_vtg_charades.json",
    )
    parser.add_argument(
        "--unknown-spans",
        choices=UNKNOWN_SPAN_CHOICES,
        default="skip",
        help="a relevant query whose span is in no file: leave it out (skip, default), stop (error), "
        "or give every relevant query its item's timestamp as the released inference does "
        "(item, for exact reproduction; no recovery then)",
    )


def data_options(args: argparse.Namespace) -> dict[str, str | list[Path]]:
    """`load_examples` keyword arguments from the data arguments."""
    if args.unknown_spans == "item" and args.spans_from:
        raise DataError(
            "--spans-from and --unknown-spans item exclude each other: the released inference gives every "
            "relevant query its item's timestamp, recovering nothing"
        )
    return {"unknown_span": args.unknown_spans, "spans_from": list(args.spans_from)}
