"""JSON out of LLM replies: the one reader of the structured answers the dataset builder
(`rarft-prep hi-vtg`, Tables 13-14) and the evaluation judges (Tables 15-16) ask for.

Models wrap their JSON in prose or code fences, answer with Python literals (single quotes,
`True`, `None`), or nest the object asked for inside another. `json_object` (`json_array`) looks
at every balanced `{...}` (`[...]`) of the reply, reads each as JSON or as a Python literal, and
returns the last one of the shape the caller asks for (required keys; item type); an inner value
counts as later than the value around it, so `{"answer": {"relevant": true}}` gives the inner
object to a caller that requires the key "relevant". Replies are adversarial: nothing here raises
on them except `UnreadableReply`, whose message says why, for the builder's reject file.

One scan, linear in the reply (`bench/llm_json.py`): the brackets are balanced in one pass
(brackets inside double-quoted strings are text; a closing bracket that does not match the
innermost open one drops the runs still open), and each run's value is built when it closes,
from its own text and the values of the runs directly inside it, so no text is read twice.
What a run may hold: JSON (with `NaN`, `Infinity`, as `json.loads` reads them) and the Python
literals models write instead: single-quoted strings, `True` / `False` / `None`, a sign before a
number, a comma before the closing bracket. A single-quoted string holding part of a bracketed
run (a quote inside `[...]` inside the string) is not read: its run counts as no value.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from json.decoder import scanstring as _scanstring

from rarft_plugin.schema import JsonValue

__all__ = ["UnreadableReply", "json_array", "json_object", "literal"]

_PAIRS = {"{": "}", "[": "]"}
_OPENING = {closing: opening for opening, closing in _PAIRS.items()}
# What the bracket balancing looks at: brackets, and quotes and escapes inside a run.
_STRUCTURE = re.compile(r'[{}\[\]"\\]')
_SPACE = re.compile(r"\s*")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_WORDS: dict[str, JsonValue] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_WORD = re.compile(r"(?:-Infinity|Infinity|NaN|true|false|null|True|False|None)(?!\w)")
_FRACTION = re.compile(r"[.eE]")
_STRING_END = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}


class UnreadableReply(ValueError):
    """No value of the asked shape in a reply; the message says why."""


class _NotALiteral(Exception):
    """A run whose text is neither JSON nor a Python literal."""


def literal(text: str) -> JsonValue | None:
    """`text` read as JSON, or else as a Python literal; None if neither.

    >>> literal('{"a": 1}'), literal("{'a': None}"), literal("{a}")
    ({'a': 1}, {'a': None}, None)
    """
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


_Run = tuple[int, int, JsonValue | None]  # start, end, value (None: not a literal)


def _runs(reply: str) -> list[_Run]:
    """Every balanced `{...}` / `[...]` run of the reply with its value, in the order they close."""
    runs: list[_Run] = []
    stack: list[tuple[int, list[_Run]]] = []  # open runs: start, the runs closed directly inside
    skip_to = in_string = 0  # skip_to: past an escaped character; in_string: inside a "..." of a run
    for match in _STRUCTURE.finditer(reply):
        position, char = match.start(), match.group()
        if position < skip_to:
            continue
        if in_string:
            if char == "\\":
                skip_to = position + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = bool(stack)
        elif char in _PAIRS:
            stack.append((position, []))
        elif char in _OPENING:
            if stack and reply[stack[-1][0]] == _OPENING[char]:
                start, children = stack.pop()
                try:
                    value = _container(reply, start, position, children)
                except _NotALiteral:
                    value = None
                run = (start, position + 1, value)
                runs.append(run)
                if stack:
                    stack[-1][1].append(run)
            else:
                stack.clear()
    return runs


def _container(reply: str, start: int, close: int, children: list[_Run]) -> JsonValue:
    """The value of the run from `start` to its closing bracket at `close`; `_NotALiteral` if none.

    Reads only the run's own text: a run directly inside it stands for its value (`children`).
    """
    is_object = reply[start] == "{"
    values: list[JsonValue] = []  # an object's keys and values, alternating
    position, next_child = start + 1, 0
    while True:
        position = _SPACE.match(reply, position).end()
        if position == close:  # empty, or a comma before the bracket (Python)
            break
        wants_key = is_object and len(values) % 2 == 0
        if next_child < len(children) and position == children[next_child][0]:
            _, position, value = children[next_child]
            next_child += 1
            if value is None or wants_key:  # a dict or list is no key
                raise _NotALiteral
        else:
            value, position, next_child = _scalar(reply, position, close, children, next_child)
        values.append(value)
        position = _SPACE.match(reply, position).end()
        if wants_key:
            if reply[position] != ":":
                raise _NotALiteral
        elif position == close:
            break
        elif reply[position] != ",":
            raise _NotALiteral
        position += 1
    if not is_object:
        return values
    if len(values) % 2:  # a key without its value
        raise _NotALiteral
    return dict(zip(values[::2], values[1::2], strict=True))


def _scalar(reply: str, position: int, close: int, children: list[_Run], next_child: int) -> tuple[JsonValue, int, int]:
    """The string, number or constant at `position`: (value, its end, the first run after it)."""
    if reply[position] in _STRING_END:
        parts = []
        while True:  # 'a' "b": Python joins adjacent strings
            end, next_child = _string_end(reply, position, close, children, next_child)
            parts.append(_string(reply, position, end))
            following = _SPACE.match(reply, end, close).end()
            if reply[following] not in _STRING_END:
                return "".join(parts), end, next_child
            position = following
    match = _NUMBER.match(reply, position, close)
    if match:
        text = match.group()
        try:
            return (float(text) if _FRACTION.search(text) else int(text)), match.end(), next_child
        except ValueError:  # more digits than int() reads
            raise _NotALiteral from None
    match = _WORD.match(reply, position, close)
    if match:
        return _WORDS[match.group()], match.end(), next_child
    raise _NotALiteral


def _string(reply: str, start: int, end: int) -> str:
    """The string literal reply[start:end]: JSON's reading of a double-quoted one (control characters
    allowed), else Python's."""
    if reply[start] == '"':
        try:
            value, stop = _scanstring(reply, start + 1, False)
            if stop == end:
                return value
        except ValueError:
            pass
    text = reply[start:end]
    if "\\" not in text and "\n" not in text and "\r" not in text:
        return text[1:-1]  # what Python reads from a one-line string without escapes (and faster)
    value = literal(text)
    if not isinstance(value, str):
        raise _NotALiteral
    return value


def _string_end(reply: str, position: int, close: int, children: list[_Run], next_child: int) -> tuple[int, int]:
    """(just past the string opened at `position`, the first run after it), within the container's own text.

    A run inside a single-quoted string is text of the string, unless it holds the quote (where
    Python would end the string: inside the run).
    """
    quote, end = reply[position], position + 1
    finder = _STRING_END[quote]
    while True:
        limit = children[next_child][0] if next_child < len(children) else close
        match = finder.search(reply, end, limit)  # up to the next run only: each character is read once
        if match is None:
            if limit == close:
                raise _NotALiteral
            run_start, run_end, _ = children[next_child]  # the string holds a run: its text
            if quote in reply[run_start:run_end]:
                raise _NotALiteral
            end, next_child = run_end, next_child + 1
        elif match.group() == "\\":
            end = match.end() + 1
        else:
            return match.end(), next_child


def json_object(reply: str, required: tuple[str, ...] = ()) -> dict[str, JsonValue]:
    """The last JSON object of a reply that has the `required` keys; `UnreadableReply` saying why else.

    >>> json_object('Sure! {"eligible_categories": [{"path": "Scene/SceneExistence"}]} Done.', ("eligible_categories",))
    {'eligible_categories': [{'path': 'Scene/SceneExistence'}]}
    >>> json_object("{'relevant': False} then {'relevant': True}", ("relevant",))
    {'relevant': True}
    """
    # keys in double quotes, as JSON writes them (a reject summary elides '...' values, not the key)
    keys = ", ".join(json.dumps(key) for key in required)
    shape = f" with the key{'s' if len(required) > 1 else ''} {keys}" if required else ""
    return _last(reply, "{", dict, lambda value: all(key in value for key in required), f"object{shape}")


def json_array(reply: str, items: type) -> list[JsonValue]:
    """The last JSON array of a reply whose items are all of type `items`; `UnreadableReply` saying why else.

    >>> json_array('["a", "b"] and [1]', str)
    ['a', 'b']
    """
    return _last(
        reply, "[", list, lambda value: all(isinstance(item, items) for item in value), f"array of {items.__name__}"
    )


def _last(reply: str, opening: str, wanted: type, accept: Callable[[JsonValue], bool], what: str) -> JsonValue:
    runs = sorted(run for run in _runs(reply) if reply[run[0]] == opening)  # by start: the value around comes first
    if not runs:
        raise UnreadableReply(f"no JSON {what.split()[0]} in the reply")
    for _, _, value in reversed(runs):
        if isinstance(value, wanted) and accept(value):
            return value
    if all(value is None for _, _, value in runs):
        try:
            json.loads(reply[runs[0][0] : runs[0][1]])
        except json.JSONDecodeError as error:
            raise UnreadableReply(f"invalid JSON ({error.msg})") from None
    raise UnreadableReply(f"no JSON {what} in the reply")
