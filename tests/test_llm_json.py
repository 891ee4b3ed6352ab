"""JSON out of LLM replies: the one reader the dataset builder and the judges share."""

import doctest
import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_plugin import llm_json
from rarft_plugin.llm_json import UnreadableReply, json_array, json_object


def test_the_docstring_examples_hold():
    assert doctest.testmod(llm_json).failed == 0


@pytest.mark.parametrize(
    "reply, required, expected",
    [
        ('{"relevant": true, "start": 1, "end": 2}', ("relevant",), {"relevant": True, "start": 1, "end": 2}),
        ('```json\n{"negs": {"hard": {"q": 1}}}\n```', ("negs",), {"negs": {"hard": {"q": 1}}}),
        ("{'relevant': False, 'start': None}", ("relevant",), {"relevant": False, "start": None}),  # Python literal
        ('{"result": {"relevant": true}}', ("relevant",), {"relevant": True}),  # nested: the object asked for
        ('{"a": 1} and later {"a": 2}', ("a",), {"a": 2}),  # the last one
        (
            '{"reason": "a } in a string", "relevant": false}',
            ("relevant",),
            {"reason": "a } in a string", "relevant": False},
        ),
        ('{"x": 1}', (), {"x": 1}),
        ("{'a': '[x]', 'b': [1, 2,],}", ("a",), {"a": "[x]", "b": [1, 2]}),  # Python: brackets in strings, commas
        ("{'a': 'it\\'s', 'b': 'x' \"y\"}", ("a",), {"a": "it's", "b": "xy"}),  # escapes, joined strings
        ('{"a": "line\nbreak", "n": -1.5e1, "c": NaN}', ("a",), {"a": "line\nbreak", "n": -15.0, "c": math.nan}),
        ("{'a': true, 'b': None}", ("a",), {"a": True, "b": None}),  # JSON and Python words mixed
        ('{"a": {"a": {"a": 1}}}', ("a",), {"a": 1}),
    ],
)
def test_json_object(reply, required, expected):
    assert json.dumps(json_object(reply, required), sort_keys=True) == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(
    "reply, required, message",
    [
        ("no json here", (), "no JSON object in the reply"),
        ('{"negs": ', ("negs",), "no JSON object in the reply"),  # cut off
        ("{not json}", (), "invalid JSON"),
        ('{"other": 1}', ("eligible_categories",), 'no JSON object with the key "eligible_categories" in the reply'),
        ('{"other": 1}', ("a", "b"), 'no JSON object with the keys "a", "b" in the reply'),
        ("{'a': [it's]}", (), "invalid JSON"),  # a quote inside a run inside a single-quoted string: not read
        ('["a"]', (), "no JSON object in the reply"),
    ],
)
def test_json_object_says_why_it_finds_nothing(reply, required, message):
    with pytest.raises(UnreadableReply, match=message):
        json_object(reply, required)


@pytest.mark.parametrize(
    "reply, items, expected",
    [
        (
            'Categories: ["Object/ObjectExistence", "Attribute/Counting"]',
            str,
            ["Object/ObjectExistence", "Attribute/Counting"],
        ),
        ("[['a', 'b']]", str, ["a", "b"]),
        ('["a"] then [1, 2]', str, ["a"]),
        ("[]", str, []),
        ("[1, [2]]", int, [2]),  # an inner value counts as later than the value around it
    ],
)
def test_json_array(reply, items, expected):
    assert json_array(reply, items) == expected


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}[]\"\\':,tT1 a-eNn")), max_size=40))
def test_any_reply_gives_a_value_or_the_reason(reply):
    for read in (lambda r: json_object(r, ("a",)), lambda r: json_array(r, str)):
        try:
            value = read(reply)
        except UnreadableReply as error:
            assert str(error).startswith(("no JSON", "invalid JSON"))
        else:
            assert isinstance(value, (dict, list))


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Objects of JSON values whose strings and keys are drawn from `text` (no key "answer": the key asked for)."""
    keys = text.filter(lambda key: key != "answer")
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )
    return st.dictionaries(keys, values, max_size=4)


# Python's repr quotes with ' and keeps " and brackets as they are: the bracket balancing, which
# knows only "...", reads such strings wrong (as the former reader did), so they hold neither.
PYTHON_SAFE_TEXT = st.text(alphabet=st.characters(blacklist_characters='"{}[]'), max_size=8)


@settings(max_examples=400, deadline=None)
@given(
    written=st.one_of(
        st.tuples(json_values(st.text(max_size=8)), st.just(json.dumps)),
        st.tuples(json_values(PYTHON_SAFE_TEXT), st.just(repr)),
    ),
    before=st.text(alphabet=st.sampled_from(list("ab {}[]:,'")), max_size=12),
    after=st.text(max_size=12),
)
def test_an_object_written_as_json_or_python_amid_prose_reads_back(written, before, after):
    """JSON or Python's repr of an object, after a prose fragment (brackets included), reads back as written."""
    value, write = written
    reply = f"{before}\n{write({'answer': value})} {after.replace('{', '(').replace('[', '(')}"
    assert json_object(reply, ("answer",)) == {"answer": value}


def test_hostile_replies_are_read_quickly():
    """Replies of about 250k characters, deeply nested; the former reader re-read every nesting level (minutes
    each; the curve is in bench/llm_json.py)."""
    hostile = [
        '{"a": ' * 35_000 + "1" + "}" * 35_000,
        '{"a": [' * 28_000 + "1" + "]}" * 28_000,
        "{'a': " * 40_000 + "x" + "}" * 40_000,
        '{"negs": ' + "[" * 125_000 + "]" * 125_000 + "}",
        "{" * 250_000,
        '{"a": "' + "\\" * 125_000 + '"}',
        "{'a': '" + "[x]" * 80_000 + "'}",
    ]
    started = time.perf_counter()
    for reply in hostile:
        with pytest.raises(UnreadableReply):
            json_object(reply, ("negs", "missing"))
    # A generous bound: quadratic behaviour on any of these would take hours.
    assert time.perf_counter() - started < 60
