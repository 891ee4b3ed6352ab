import pytest

from rarft_plugin.parsing import parse_response
from rarft_plugin.prompts import EVAL_SYSTEM_MESSAGE, TEMPLATE_FOR_MODEL, TEMPLATES, build_messages, instruction

QUERY = "a person opens the door"


@pytest.mark.parametrize(
    "template, must_contain",
    [
        ("ra_rft", ["<think>", "<answer>", "<correct>", "does not occur"]),
        ("ra_rft_released", ["<correction>", "NIL"]),
        ("time_r1", ["<timestep>", "<answer>", "12.54 to 17.83", "no relevant segment"]),
        ("videochat_r1", ["<answer>", "12.54 to 17.83", "no relevant segment"]),
        ("videochat_r1_think", ["<think>", "<answer>", "no relevant segment"]),
        ("qwen2_5_vl", ["<answer>", "no relevant segment"]),
    ],
)
def test_templates_ask_for_their_format_and_the_refusal(template, must_contain):
    text = instruction(template, QUERY)
    assert QUERY in text
    for piece in must_contain:
        assert piece in text


def test_ra_rft_template_asks_for_exactly_what_the_format_reward_checks():
    example = instruction("ra_rft", QUERY).split("The output format is: ")[1]
    assert parse_response(example).strict_format
    released = instruction("ra_rft_released", QUERY).split("The output format is: ")[1]
    assert parse_response(released).released_format


def test_every_recipe_model_has_a_template():
    assert set(TEMPLATE_FOR_MODEL.values()) <= set(TEMPLATES)


@pytest.mark.parametrize("purpose, first, system", [("train", "text", False), ("eval", "video", True)])
def test_message_layout_follows_the_released_code(purpose, first, system):
    messages = build_messages("ra_rft", QUERY, purpose=purpose)
    user = messages[-1]
    assert user["role"] == "user" and user["content"][0]["type"] == first
    assert (messages[0]["role"] == "system") == system
    if system:
        assert messages[0]["content"][0]["text"] == EVAL_SYSTEM_MESSAGE
    assert all(set(item) == {"type", "text"} for m in messages for item in m["content"])  # one row schema


def test_unknown_template():
    with pytest.raises(KeyError, match="unknown prompt template"):
        instruction("gpt", QUERY)
