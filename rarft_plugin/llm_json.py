"""JSON out of LLM replies: the one reader of the structured answers the dataset builder
(`rarft-prep hi-vtg`, Tables 13-14) and the evaluation judges (Tables 15-16) ask for.

Models wrap their JSON in prose or code fences, answer with Python literals (single quotes,
`True`, `None`), or nest the object asked for inside another. `json_object` (`json_array`) looks
at every balanced `{...}` (`[...]`) of the reply, reads each as JSON or else as a Python literal,
and returns the last one of the shape the caller asks for (required keys; item type); an inner
value counts as later than the value around it, so `{"answer": {"relevant": true}}` gives the
inner object to a caller that requires the key "relevant". Replies are adversarial: nothing here raises on them except
`UnreadableReply`, whose message says why, for the builder's reject file.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator

from rarft_plugin.schema import JsonValue

__all__ = ["UnreadableReply", "json_array", "json_object", "literal"]

_PAIRS = {"{": "}", "[": "]"}


class UnreadableReply(ValueError):
    """No value of the asked shape in a reply; the message says why."""


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


def _balanced(reply: str, opening: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every balanced `opening ... closing` run, in the order they close.

    Brackets inside double-quoted strings are text; a closing bracket that does not match the
    innermost open one drops the runs still open (they cannot be well formed).
    """
    stack: list[tuple[int, str]] = []
    in_string = escaped = False
    for position, char in enumerate(reply):
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
            continue
        if char == '"' and stack:
            in_string = True
        elif char in _PAIRS:
            stack.append((position, char))
        elif char in _PAIRS.values():
            if stack and _PAIRS[stack[-1][1]] == char:
                start, kind = stack.pop()
                if kind == opening:
                    yield start, position + 1
            else:
                stack.clear()


def json_object(reply: str, required: tuple[str, ...] = ()) -> dict[str, JsonValue]:
    """The last JSON object of a reply that has the `required` keys; `UnreadableReply` saying why else.

    >>> json_object('Sure! {"eligible_categories": [{"path": "Scene/SceneExistence"}]} Done.', ("eligible_categories",))
    {'eligible_categories': [{'path': 'Scene/SceneExistence'}]}
    >>> json_object("{'relevant': False} then {'relevant': True}", ("relevant",))
    {'relevant': True}
    """
    shape = f" with {', '.join(map(repr, required))}" if required else ""
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
    runs = sorted(_balanced(reply, opening))  # by start: the value around another comes first
    if not runs:
        raise UnreadableReply(f"no JSON {what.split()[0]} in the reply")
    values = [literal(reply[start:end]) for start, end in runs]
    for value in reversed(values):
        if isinstance(value, wanted) and accept(value):
            return value
    if all(value is None for value in values):
        try:
            json.loads(reply[runs[0][0] : runs[0][1]])
        except json.JSONDecodeError as error:
            raise UnreadableReply(f"invalid JSON ({error.msg})") from None
    raise UnreadableReply(f"no JSON {what} in the reply")
