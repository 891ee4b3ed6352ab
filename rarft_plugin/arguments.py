"""Argument types shared by the command lines (`rarft-prep`, `rarft-eval`, `rarft-audit`): a bad value is a usage
error naming the flag, before any work starts."""

from __future__ import annotations

import argparse

__all__ = [
    "add_endpoint_arguments",
    "open_fraction",
    "parse_ratio",
    "positive_int",
    "positive_number",
]


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (both excluded), got {value}")
    return value


def parse_ratio(text: str) -> tuple[int, int]:
    """relevant:irrelevant, e.g. 1:3: two whole numbers >= 0, not both 0."""
    try:
        relevant, irrelevant = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"ratio must look like 1:3, got {text!r}") from None
    if relevant < 0 or irrelevant < 0 or relevant + irrelevant == 0:
        raise argparse.ArgumentTypeError(f"ratio needs non-negative parts, not both 0: {text!r}")
    return relevant, irrelevant


def add_endpoint_arguments(
    parser: argparse.ArgumentParser, *, model_help: str, model_dest: str = "model", model_aliases: tuple[str, ...] = ()
) -> None:
    """--base-url, --model (and `model_aliases`), --api-key and --concurrency: the OpenAI-compatible LLM endpoint a
    command calls (`rarft_plugin.llm_client.ChatClient`); --concurrency unset means the client's default."""
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://localhost:8080/v1")
    parser.add_argument("--model", *model_aliases, dest=model_dest, default=None, help=model_help)
    parser.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="requests in flight at once (default: 16 for a remote endpoint; for a local one, as many as it "
        "serves at once (llama.cpp's /props), else 1)",
    )
