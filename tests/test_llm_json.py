"""JSON out of LLM replies: the one reader the dataset builder and the judges share."""

import doctest

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
    ],
)
def test_json_object(reply, required, expected):
    assert json_object(reply, required) == expected


@pytest.mark.parametrize(
    "reply, required, message",
    [
        ("no json here", (), "no JSON object in the reply"),
        ('{"negs": ', ("negs",), "no JSON object in the reply"),  # cut off
        ("{not json}", (), "invalid JSON"),
        ('{"other": 1}', ("eligible_categories",), "no JSON object with 'eligible_categories'"),
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
