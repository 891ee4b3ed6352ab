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
_TURN_END = ("<|im_end|>", "<|endoftext|>")


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
    for marker in _TURN_END:
        end = response.find(marker)
        if end >= 0:
            response = response[:end]
    return response


# Reading a response as the evaluation does. Two named readings (docs/eval.md):
# - "released" (default): the released evaluation (src/llm_eval/utils.py:14-37): every complete
#   <think>...</think> block removed, then the FIRST complete <answer> block; with none, what is
#   left of the text.
# - "last_block": rarft's earlier reading: the LAST complete <answer> block (innermost when nested),
#   else the whole response, think block included.
ANSWER_READINGS = ("released", "last_block")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FIRST_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ANSWER_TAG = re.compile(r"<(/?)answer>")


def evaluation_answer(model_output: str, reading: str = "released") -> str:
    """The text of a response that the evaluation reads as its answer (judges, rule judge, SBERT).

    >>> evaluation_answer("<think>0 to 3</think> The video does not show it.")
    'The video does not show it.'
    >>> evaluation_answer("<answer>No match.</answer><answer>2 to 6</answer>")
    'No match.'
    >>> evaluation_answer("<answer>No match.</answer><answer>2 to 6</answer>", "last_block")
    '2 to 6'
    """
    if reading == "released":
        text = _THINK_BLOCK.sub("", model_output)
        match = _FIRST_ANSWER_BLOCK.search(text)
        return (match.group(1) if match else text).strip()
    if reading == "last_block":
        last, opened = None, None
        for tag in _ANSWER_TAG.finditer(model_output):
            if not tag.group(1):
                opened = tag.end()
            elif opened is not None:
                last, opened = model_output[opened : tag.start()].strip(), None
        return last if last is not None else model_output
    raise ValueError(f"unknown answer reading {reading!r}; expected one of {list(ANSWER_READINGS)}")


_CORRECTION_BLOCK = re.compile(r"<(correct|correction)>.*?</\1>", re.DOTALL)


def without_correction(model_output: str) -> str:
    """The response with every complete `<correct>`/`<correction>` block removed, think and tags kept:
    the text the released evaluation's SBERT score compares (llm_evaluator.py:492-499).

    >>> without_correction("<think>t</think> <answer>no</answer> <correction>q</correction>")
    '<think>t</think> <answer>no</answer>'
    """
    return _CORRECTION_BLOCK.sub("", model_output).strip()
