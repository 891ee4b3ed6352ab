"""Everything that reads model output: tag blocks, the strict RA-RFT format, timestamp segments.

Output template (paper eq. 4)::

    <think>...</think> <answer>...</answer> <correct>...</correct>

`<correction>` (the authors' released code) is accepted as an alias of `<correct>` when
extracting the correction. Tags are matched case-sensitively, as the prompts spell them.
When a tag appears several times, the LAST complete block wins (as in Time-R1 and the released
code). A block that is opened but never closed does not count.

Timestamp grammar (inside the `<answer>` block; the FIRST match is the prediction)::

    segment  := ["from" | "between"] [ "[" | "(" ] time sep time [ "]" | ")" ]
    time     := number [unit] | clock
    number   := [+-] digits ["." digits] [exponent]      e.g. 12.54, .5, 1e2, -3
    clock    := [h ":"] m ":" s ["." digits]               e.g. 01:02.5, 1:02:03
    unit     := s | sec | secs | second | seconds
    sep      := "to" | "and" | "-" | "–" | "—" | "~"   (and "," inside brackets only)

Examples: `12.54 to 17.83`, `12.54 - 17.83 seconds`, `from 12.5s to 17.8s`, `[12.54, 17.83]`,
`between 3 and 7`. A segment is *valid* only if both ends are finite, non-negative and
start <= end; `nan`, `inf`, `1e309`, negative or reversed segments are not valid (no segment).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

CORRECTION_TAGS = ("correct", "correction")
_TAG = re.compile(r"<(/?)(think|answer|correct|correction)>")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_CLOCK = r"(?:\d+:)?\d+:\d+(?:\.\d+)?"
_UNIT = r"(?:\s*(?:seconds?|secs?|s)\b)?"
_TIME = rf"({_CLOCK}|{_NUMBER}){_UNIT}"
# A comma separates the two times only inside brackets ("[12.5, 17.8]"), so that a refusal such as
# "it shows 2, 3 people" is not read as a segment.
_SEGMENT = re.compile(
    rf"(?<![\w.])(?:(?:from|between)\s+)?"
    rf"(?:[\[(]\s*{_TIME}\s*(?:to|and|-|–|—|~|,)\s*{_TIME}|{_TIME}\s*(?:to|and|-|–|—|~)\s*{_TIME})",
    re.IGNORECASE,
)
# Chat-template markers around the assistant turn (Qwen2 / Qwen2.5-VL and most ChatML models).
_ASSISTANT_START = "<|im_start|>assistant"
TURN_END_MARKERS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class ParsedResponse:
    """The tag blocks of one response; None where the block is absent."""

    think: str | None
    answer: str | None
    correction: str | None
    strict_format: bool
    strict_format_released: bool


def parse_response(text: str) -> ParsedResponse:
    """Split a response into its blocks and check the strict template for both tag spellings.

    >>> p = parse_response("<think>t</think> <answer>1 to 2</answer> <correct>NIL</correct>")
    >>> p.answer, p.correction, p.strict_format
    ('1 to 2', 'NIL', True)
    """
    tags = [(m.start(), m.end(), m.group(1) == "/", m.group(2)) for m in _TAG.finditer(text)]
    blocks = _last_blocks(text, tags)
    correction = max(
        (blocks[tag] for tag in CORRECTION_TAGS if tag in blocks),
        key=lambda block: block[0],
        default=None,
    )
    return ParsedResponse(
        think=blocks["think"][1] if "think" in blocks else None,
        answer=blocks["answer"][1] if "answer" in blocks else None,
        correction=correction[1] if correction else None,
        strict_format=_is_strict(text, tags, "correct"),
        strict_format_released=_is_strict(text, tags, "correction"),
    )


def _last_blocks(text: str, tags: list[tuple[int, int, bool, str]]) -> dict[str, tuple[int, str]]:
    """For each tag name, (position, content) of its last complete, innermost block."""
    blocks: dict[str, tuple[int, str]] = {}
    open_at: dict[str, int] = {}
    for start, end, closing, name in tags:
        if not closing:
            open_at[name] = end
        elif name in open_at:
            content_start = open_at.pop(name)
            blocks[name] = (start, text[content_start:start].strip())
    return blocks


def _is_strict(text: str, tags: list[tuple[int, int, bool, str]], correction_tag: str) -> bool:
    """Exactly think, answer, correction blocks in order, nothing but whitespace around them."""
    expected = [
        (False, "think"),
        (True, "think"),
        (False, "answer"),
        (True, "answer"),
        (False, correction_tag),
        (True, correction_tag),
    ]
    if [(closing, name) for _, _, closing, name in tags] != expected:
        return False
    outside = [text[: tags[0][0]], text[tags[1][1] : tags[2][0]], text[tags[3][1] : tags[4][0]], text[tags[5][1] :]]
    return all(not part.strip() for part in outside)


def extract_segment(answer: str | None) -> tuple[float, float] | None:
    """The first timestamp segment in an answer, or None if it has no valid one.

    >>> extract_segment("The event happens from 12.5s to 17.8s.")
    (12.5, 17.8)
    >>> extract_segment("[3, 1]") is None  # reversed: not valid
    True
    """
    if not answer:
        return None
    match = _SEGMENT.search(answer)
    if match is None:
        return None
    start, end = (_seconds(token) for token in match.groups() if token is not None)
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
        return None
    return (start, end)


def _seconds(token: str) -> float:
    if ":" in token:
        total = 0.0
        for part in token.split(":"):
            total = total * 60 + float(part)
        return total
    try:
        return float(token)
    except OverflowError:  # pragma: no cover - float() returns inf rather than raising
        return math.inf


def extract_response(decoded: str, prompt: str | None = None) -> str:
    """The model's response inside a decoded prompt+response string (special tokens kept).

    Uses the last assistant-turn marker of the chat template; without one, strips the prompt
    when the decoded text starts with it, else returns the text as is.

    >>> extract_response("<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\nhi<|im_end|><|endoftext|>")
    'hi'
    """
    cut = decoded.rfind(_ASSISTANT_START)
    if cut >= 0:
        response = decoded[cut + len(_ASSISTANT_START) :]
        response = response[1:] if response.startswith("\n") else response
    elif prompt and decoded.startswith(prompt):
        response = decoded[len(prompt) :]
    else:
        response = decoded
    for marker in TURN_END_MARKERS:
        end = response.find(marker)
        if end >= 0:
            response = response[:end]
    return response
