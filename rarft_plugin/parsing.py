"""Everything that reads model output: tag blocks, the two format checks, timestamp segments, special tokens, the
response inside a decoded chat.

Output template (paper eq. 4): `<think>...</think> <answer>...</answer> <correct>...</correct>`. The paper reads the
FIRST complete block of a tag, the released reward the LAST; a block opened but never closed does not count. The
rules, with the timestamp grammars of both variants, are written once in docs/rewards.md, "Reading a response".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "CHATML",
    "ChatMarkers",
    "CORRECTION_TAGS",
    "RELEASED_FORMAT_PATTERN",
    "RELEASED_SEGMENT_PATTERN",
    "ParsedResponse",
    "parse_response",
    "follows_blocks",
    "unclosed_block",
    "find_special_token",
    "extract_segment",
    "extract_segment_released",
    "extract_response",
    "without_end_of_turn",
    "RELEASED_ANSWER_PATTERN",
    "RELEASED_CORRECTION_PATTERN",
    "RELEASED_THINK_PATTERN",
    "answer_blocks",
    "evaluation_answer",
    "without_correction",
    "sbert_response",
    "without_markup",
    "BOILERPLATE_WORDS",
    "strip_boilerplate",
]


@dataclass(frozen=True)
class ChatMarkers:
    """Where a chat template's assistant turn starts and what ends it, as text."""

    assistant_start: str  # the last one in a decoded prompt+response starts the response
    turn_ends: tuple[str, ...]  # each ends a response; the first is the end-of-turn token


# The Qwen families' chat template (ChatML): the markers read where no family is named.
CHATML = ChatMarkers(assistant_start="<|im_start|>assistant", turn_ends=("<|im_end|>", "<|endoftext|>"))

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

# The released code's patterns as written (main_rarft.py; the segment pattern is compiled with
# re.IGNORECASE there, :241). The tests check the linear-time readings below against them; they are
# not run on model output because they backtrack badly: the segment pattern is cubic on a run of
# digits, the format pattern quadratic on repeated closing tags, the block pattern's findall quadratic
# on repeated opening tags.
RELEASED_FORMAT_PATTERN = r"<think>.*?</think>\s*<answer>.*?</answer>\s*<correction>.*?</correction>"
RELEASED_SEGMENT_PATTERN = r"(\d+\.?\d*)\s+to\s+(\d+\.?\d*)"
# Same first match as RELEASED_SEGMENT_PATTERN: the first number must run up to the whitespace, so
# it never needs to give back a digit (possessive), and the leftmost match never starts right
# after a digit (that digit would start an earlier match).
_RELEASED_SEGMENT = re.compile(r"(?<!\d)(\d++\.?+\d*+)\s+to\s+(\d+\.?\d*)", re.IGNORECASE)

# A chat-template or media special token as text: <|im_start|>, <|video_pad|>, <|vision_start|>...
_SPECIAL_TOKEN = re.compile(r"<\|[^\s<>|]+\|>")


@dataclass(frozen=True)
class ParsedResponse:
    """The first complete block of each tag and the released reward's last blocks (None where
    absent), both format checks, and the first special-token marker (None for a well-formed response)."""

    think: str | None
    answer: str | None
    correction: str | None
    correction_released: str | None  # the last <correction> block (released reward)
    strict_format: bool
    released_format: bool
    special_token: str | None
    answer_released: str | None = None  # the last <answer> block (released reward)


def parse_response(text: str) -> ParsedResponse:
    """Split a response into its first blocks and check both formats.

    >>> p = parse_response("<think>t</think> <answer>1 to 2</answer> <correct>NIL</correct>")
    >>> p.answer, p.correction, p.strict_format, p.released_format
    ('1 to 2', 'NIL', True, False)
    >>> p = parse_response("<answer>No match.</answer> <answer>2 to 6</answer>")
    >>> p.answer, p.answer_released
    ('No match.', '2 to 6')
    """
    corrections = [block for block in (_first_block(text, tag) for tag in CORRECTION_TAGS) if block]
    return ParsedResponse(
        think=_content(_first_block(text, "think")),
        answer=_content(_first_block(text, "answer")),
        correction=_content(min(corrections, default=None)),
        correction_released=_last_block(text, "correction"),
        strict_format=_is_strict(text),
        released_format=_is_released_format(text),
        special_token=find_special_token(text),
        answer_released=_last_block(text, "answer"),
    )


def _first_block(text: str, tag: str) -> tuple[int, str] | None:
    """(position, content) of the first `<tag>` and the first `</tag>` after it, or None."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    content_start = start + len(opening)
    end = text.find(closing, content_start)
    if end < 0:
        return None
    return start, text[content_start:end].strip()


def _last_block(text: str, tag: str) -> str | None:
    """`re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)[-1]`, stripped, in linear time; None if none.

    findall's matches do not overlap: each runs from the first opening tag at or after the end of
    the previous match to the first closing tag after it.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    last, position = None, 0
    while (start := text.find(opening, position)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break  # no later opening tag has a closing tag after it either
        last, position = text[start + len(opening) : end], end + len(closing)
    return last.strip() if last is not None else None


def _content(block: tuple[int, str] | None) -> str | None:
    return block[1] if block else None


def _is_strict(text: str) -> bool:
    """Paper eq. 4: exactly think, answer, correct blocks in order, nothing but whitespace around them."""
    return follows_blocks(text, ("think", "answer", "correct"))


def follows_blocks(text: str, blocks: tuple[str, ...]) -> bool:
    """True iff the response is exactly these tag blocks, in this order, with nothing but whitespace
    around them and no other think / answer / correct(ion) tag (the output format a prompt template
    asks for: `rarft_plugin.prompts.OUTPUT_BLOCKS`). Tags inside a block other than these
    (`<timestep>`) are content.

    >>> follows_blocks("<think>a</think> <answer>1 to 2</answer>", ("think", "answer"))
    True
    >>> follows_blocks("Sure! <answer>1 to 2</answer>", ("answer",)), follows_blocks("\\n\\n", ("answer",))
    (False, False)
    """
    tags = [(m.start(), m.end(), m.group(1) == "/", m.group(2)) for m in _TAG.finditer(text)]
    expected = [(closing, name) for name in blocks for closing in (False, True)]
    if [(closing, name) for _, _, closing, name in tags] != expected:
        return False
    # text before the first block, between blocks, after the last one
    gaps = [(0, tags[0][0])] + [(tags[i][1], tags[i + 1][0]) for i in range(1, len(tags) - 1, 2)]
    gaps.append((tags[-1][1], len(text)))
    return all(not text[start:end].strip() for start, end in gaps)


def unclosed_block(text: str) -> str | None:
    """The tag of a think / answer / correct(ion) block opened and never closed (a response cut off
    mid-block, typically by the generation limit), or None.

    >>> unclosed_block("<think>the man opens the"), unclosed_block("<answer>1 to 2</answer>")
    ('think', None)
    """
    open_tags: dict[str, bool] = {}
    for match in _TAG.finditer(text):
        open_tags[match.group(2)] = not match.group(1)
    return next((name for name, opened in open_tags.items() if opened), None)


def _is_released_format(text: str) -> bool:
    """`re.fullmatch(RELEASED_FORMAT_PATTERN, text.strip(), re.DOTALL)`, in linear time.

    The stripped text must open with `<think>` and close with `</correction>`; in between, some
    `</think>` must be followed by whitespace and `<answer>`, and some `</answer>` after that by
    whitespace and a `<correction>` that ends before the final `</correction>`. Taking the
    earliest such `<answer>` and then the earliest such `<correction>` finds a match iff one exists.
    """
    text = text.strip()
    if not (text.startswith("<think>") and text.endswith("</correction>")):
        return False
    final_close = len(text) - len("</correction>")
    answer_content = _after_gap(text, "</think>", "<answer>", len("<think>"))
    if answer_content < 0:
        return False
    correction_content = _after_gap(text, "</answer>", "<correction>", answer_content)
    return 0 <= correction_content <= final_close


def _after_gap(text: str, closing: str, opening: str, start: int) -> int:
    """Index just after the first `closing \\s* opening` whose `closing` starts at or after `start`; -1 if none."""
    at = text.find(closing, start)
    while at >= 0:
        after = at + len(closing)
        while after < len(text) and text[after].isspace():  # what \s matches in a str pattern
            after += 1
        if text.startswith(opening, after):
            return after + len(opening)
        at = text.find(closing, at + 1)
    return -1


def find_special_token(text: str) -> str | None:
    """The first chat/media special-token marker (`<|...|>`) in a response, or None.

    A response holding one is malformed: every reward is 0 in both variants.

    >>> find_special_token("<answer>2 to 6</answer><|video_pad|><|video_pad|>")
    '<|video_pad|>'
    >>> find_special_token("<answer>a | b</answer>") is None
    True
    """
    match = _SPECIAL_TOKEN.search(text)
    return match.group(0) if match else None


def extract_segment(answer: str | None) -> tuple[float, float] | None:
    """The first valid timestamp segment in an answer (paper grammar), or None if it has none.

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


def extract_segment_released(answer: str | None) -> tuple[float, float] | None:
    """The released code's segment: the first `number to number`, as written, or None.

    No validity check: the span may be reversed, and a number of 309 digits or more reads as inf.

    >>> extract_segment_released("-3 to 5"), extract_segment_released("6 to 2")
    ((3.0, 5.0), (6.0, 2.0))
    >>> extract_segment_released("2.5s to 6s") is None  # units are not part of the grammar
    True
    """
    match = _RELEASED_SEGMENT.search(answer or "")
    if match is None:
        return None
    return (float(match.group(1)), float(match.group(2)))


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


def extract_response(decoded: str, prompt: str | None = None, chat: ChatMarkers | None = None) -> str:
    """The model's response inside a decoded prompt+response string (special tokens kept).

    Uses the last assistant-turn marker of the chat template (`chat`: the model family's markers;
    default: ChatML, the Qwen families'); without one, strips the prompt when the
    decoded text starts with it, else returns the text as is. The response ends at the first
    end-of-turn marker.

    >>> extract_response("<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\nhi<|im_end|><|endoftext|>")
    'hi'
    """
    chat = chat or CHATML
    cut = decoded.rfind(chat.assistant_start)
    if cut >= 0:
        response = decoded[cut + len(chat.assistant_start) :]
        response = response[1:] if response.startswith("\n") else response
    elif prompt and decoded.startswith(prompt):
        response = decoded[len(prompt) :]
    else:
        response = decoded
    for marker in chat.turn_ends:
        end = response.find(marker)
        if end >= 0:
            response = response[:end]
    return response


def without_end_of_turn(response: str, chat: ChatMarkers | None = None) -> str:
    """The response without the end-of-turn markers it ends with (and the whitespace around them).

    Inference that decodes special tokens (the released inference) leaves `<|im_end|>` at the end of
    every finished output; the evaluation's format check reads the response without it.

    >>> without_end_of_turn("<answer>No.</answer><|im_end|>\\n"), without_end_of_turn("a <|im_end|> b")
    ('<answer>No.</answer>', 'a <|im_end|> b')
    """
    markers = (chat or CHATML).turn_ends
    end = len(response)
    while True:
        while end and response[end - 1].isspace():
            end -= 1
        marker = next((m for m in markers if end >= len(m) and response.startswith(m, end - len(m))), None)
        if marker is None:
            return response[:end]
        end -= len(marker)


# Reading a response as the evaluation does (docs/eval.md): the released evaluation's reading
# (src/llm_eval/utils.py:14-37): every complete <think>...</think> block removed, then the FIRST complete
# <answer> block; with none, what is left of the text.
# The released evaluation's patterns as written (used with `re.sub` / `re.search`, DOTALL). The tests
# check the linear-time readings below against them; they are not run on model output: on an opened
# tag that is never closed each lazy `.*?` scans to the end of the text, once per opening (100k
# characters of "<think>" take 21 s on a 2-core CPU, rarft's reading 11 ms: bench/parsing_scaling.py).
RELEASED_THINK_PATTERN = r"<think>.*?</think>"
RELEASED_ANSWER_PATTERN = r"<answer>(.*?)</answer>"
RELEASED_CORRECTION_PATTERN = r"<(correct|correction)>.*?</\1>"
_ANSWER_TAG = re.compile(r"<(/?)answer>")
_THINK_OPENING = re.compile(r"<(think)>")
_CORRECTION_OPENING = re.compile(r"<(correct|correction)>")


def evaluation_answer(model_output: str) -> str:
    """The text of a response that the evaluation reads as its answer (the rule judge, the LLM judges).

    >>> evaluation_answer("<think>0 to 3</think> The video does not show it.")
    'The video does not show it.'
    >>> evaluation_answer("<answer>No match.</answer><answer>2 to 6</answer>")
    'No match.'
    """
    text = _without_blocks(model_output, _THINK_OPENING)
    block = _first_block(text, "answer")
    return block[1] if block else text.strip()


def _without_blocks(text: str, opening: re.Pattern[str]) -> str:
    """`re.sub(r"<(T)>.*?</\\1>", "", text, flags=re.DOTALL)` for the tags T that `opening` matches, in
    linear time: each opening is read once, and a tag whose closing is missing after some opening
    lacks it after every later one too, so its closing is searched for at most once in vain."""
    kept, at, unclosed = [], 0, set()
    for match in opening.finditer(text):
        if match.start() < at or match.group(1) in unclosed:
            continue  # inside a removed block, or a tag never closed from here on
        end = text.find(f"</{match.group(1)}>", match.end())
        if end < 0:
            unclosed.add(match.group(1))
            continue
        kept.append(text[at : match.start()])
        at = end + len(match.group(1)) + 3
    kept.append(text[at:])
    return "".join(kept)


def _answer_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of each complete `<answer>` block: an opening tag up to the next closing tag
    (a later opening tag before it starts the block again)."""
    spans, opened = [], None
    for tag in _ANSWER_TAG.finditer(text):
        if not tag.group(1):
            opened = tag.end()
        elif opened is not None:
            spans.append((opened, tag.start()))
            opened = None
    return spans


def answer_blocks(text: str) -> int:
    """How many complete `<answer>` blocks a response holds (the exploit monitors count responses with two).

    >>> answer_blocks("<answer>No match.</answer> <answer>2 to 6</answer>"), answer_blocks("<answer>2 to")
    (2, 0)
    """
    return len(_answer_spans(text))


def without_correction(model_output: str) -> str:
    """The response with every complete `<correct>`/`<correction>` block removed, think and tags kept:
    the text the released evaluation's SBERT score compares (llm_evaluator.py:492-499).

    >>> without_correction("<think>t</think> <answer>no</answer> <correction>q</correction>")
    '<think>t</think> <answer>no</answer>'
    """
    return _without_blocks(model_output, _CORRECTION_OPENING).strip()


def without_markup(text: str) -> str:
    """`re.sub(r"<[^>]+>", "", text)` in linear time: every tag markup removed, contents kept.

    A `<` starts a tag when a character other than `>` follows it and a `>` comes later; the tag
    ends at the first `>`. (The regex itself is quadratic on a run of `<` without a `>`.)

    >>> without_markup("<think>a <timestep>1 to 2</timestep></think> <answer>b</answer>")
    'a 1 to 2 b'
    """
    pieces, position = [], 0
    while (start := text.find("<", position)) >= 0:
        end = text.find(">", start + 2) if start + 1 < len(text) and text[start + 1] != ">" else -2
        if end == -1:
            break  # no later "<" has a ">" after it either
        if end == -2:  # "<>": not a tag; "<" at the very end: not one either
            pieces.append(text[position : start + 1])
            position = start + 1
            continue
        pieces.append(text[position:start])
        position = end + 1
    pieces.append(text[position:])
    return "".join(pieces)


def sbert_response(model_output: str) -> str:
    """The response text the released evaluation's SBERT score encodes: the response minus its
    `<correct>` / `<correction>` blocks (llm_evaluator.py:492-499), then every tag stripped, contents
    kept, think included (utils.py:40-65).

    >>> sbert_response("<think>t</think> <answer>No.</answer> <correction>q</correction><|im_end|>")
    't No.'
    """
    return without_markup(without_correction(model_output)).strip()


# The style-proof explain reward (`rarft_plugin.rewards`, explain="debiased") compares refusals
# without their boilerplate: a clause is boilerplate when every word of it is in this list, i.e. it
# says that the query and the video disagree without saying how. The list holds the words of the
# opening sentences of the released HI-Charades refusals ("This query does not align well with the
# video segment.", "I believe this query is entirely inappropriate for the video.", "There are some
# inconsistencies between the query and the video content.", ...) and of generic refusals; words of
# the taxonomy (object, action, scene, ...) and of what a video shows are not in it.
BOILERPLATE_WORDS = frozenset(
    """
    a about accurately activity agree agrees align aligned alignment aligns all also am an and any
    anything appear appears applies apply appropriate are aren as aspect aspects at available be been
    being believe between both but by can cannot clear clearly clip clips closely compatible completely
    confident conflict conflicts consistent contain contains content contents contradict contradicts
    correspond corresponds could depict depicted depicts describe described describes detail details did
    differ different differs discrepancies discrepancy display displayed displays do does doesn don
    element elements entirely event events evidence exist exists find fit fits footage for from fully
    given happen happens has have i in inappropriate incompatible inconsistencies inconsistency
    inconsistent irrelevant is isn it its itself key match matched matches matching me mentioned
    misaligned misalignment mismatch mismatched mismatches moment multiple my no none not nothing
    observed of on or part precisely present presented provided queries query quite rather really
    recorded refer referenced refers regarding relevant requested s seem seems seen segment segments
    show showing shown shows slight slightly small so some somewhat specified subtle supported sure t
    than that the there therefore these they this those to unsuitable unsupported very video videos
    visual was we well were what which while with within would
    """.split()
)
_CLAUSE_BREAK = re.compile(r"(?<=[.!?;:])(?:\s+|(?=[A-Z]))")  # released refusals glue "video.The segment"
_CLAUSE_WORD = re.compile(r"\w+")


def strip_boilerplate(text: str) -> str:
    """The text without its boilerplate clauses (every word in `BOILERPLATE_WORDS`) and without clauses
    holding no word; the other clauses joined by one space. Linear in the text.

    >>> strip_boilerplate("I believe this query is entirely inappropriate for the video.The man sits on a bed.")
    'The man sits on a bed.'
    >>> strip_boilerplate("9.3 to 14.4"), strip_boilerplate("This query does not align well with the video.")
    ('9.3 to 14.4', '')
    """
    kept = []
    for clause in _CLAUSE_BREAK.split(text):
        words = _CLAUSE_WORD.findall(clause.lower())
        if words and not all(word in BOILERPLATE_WORDS for word in words):
            kept.append(clause.strip())
    return " ".join(kept)
