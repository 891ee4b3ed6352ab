"""Prompt templates: the one home of what the policy model is asked.

| name                 | model                          | answer format asked                                   |
|----------------------|--------------------------------|--------------------------------------------------------|
| `ra_rft`             | RA-RFT training / evaluation   | `<think>` `<answer>` `<correct>` (paper, eq. 4)        |
| `ra_rft_released`    | the authors' released code     | same with `<correction>` and `NIL` for answerable ones |
| `time_r1`            | Time-R1 baseline               | `<think>` with `<timestep>`, `<answer>S to E</answer>` |
| `videochat_r1`       | VideoChat-R1 baseline          | `<answer>S to E</answer>`                              |
| `videochat_r1_think` | VideoChat-R1-think baseline    | `<think>` then `<answer>S to E</answer>`               |
| `qwen2_5_vl`         | plain Qwen instruct baseline   | `<answer>S to E</answer>`                              |

Every baseline template carries the refusal instruction the paper adds for LVLM baselines
(§4.3): refuse an irrelevant query and say why. `build_messages(..., purpose=)` follows the
released code: training prompts put the text before the video; evaluation prompts add the
system message "You are a video analysis expert." and put the video first.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "EVAL_SYSTEM_MESSAGE",
    "TEMPLATES",
    "OUTPUT_BLOCKS",
    "COMPLIANT_BLOCKS",
    "TEMPLATE_FOR_MODEL",
    "TEMPLATE_FOR_VARIANT",
    "instruction",
    "build_messages",
]

Purpose = Literal["train", "eval"]
EVAL_SYSTEM_MESSAGE = "You are a video analysis expert."

_GROUNDING = 'To accurately pinpoint the event "{query}" in the video, determine the precise time period of the event. '
_TIMESTEP_THINKING = (
    "Output your thought process within the <think> </think> tags, including analysis with either specific "
    "time ranges (xx.xx to xx.xx) in <timestep> </timestep> tags. "
)
_PLAIN_THINKING = "Output your thought process within the <think> </think> tags. "
_TIME_ANSWER = (
    "Then, provide the start and end times (in seconds, precise to two decimal places) in the format "
    '"start time to end time" within the <answer> </answer> tags. For example: "12.54 to 17.83". '
)
_REFUSAL = (
    "If the event does not occur in the video, do not give a time period: state within the <answer> </answer> "
    "tags that no relevant segment exists and explain why the query does not match the video."
)


def _ra_rft(tag: str, answerable_correction: str, refusal: str) -> str:
    return (
        _GROUNDING
        + _TIMESTEP_THINKING
        + "If the event occurs in the video, provide the start and end times (in seconds, precise to two decimal "
        'places) in the format "start time to end time" within the <answer> </answer> tags, for example '
        f'"12.54 to 17.83", and then write {answerable_correction} within the <{tag}> </{tag}> tags. '
        f"If the event does not occur in the video, do not give a time period: {refusal} within the <{tag}> "
        f"</{tag}> tags. The output format is: <think>...</think> <answer>...</answer> <{tag}>...</{tag}>"
    )


TEMPLATES: dict[str, str] = {
    "ra_rft": _ra_rft(
        "correct",
        "nothing",
        "explain within the <answer> </answer> tags why the query does not match the video, and then rewrite "
        "the query so that it matches the video",
    ),
    # The released instruction (trainer:61-70, inference.py:19-28) as the released code's behaviour describes
    # it: a NIL correction for an answerable query; for one to refuse, the answer says that no relevant
    # segment exists and why, and the correction is an answerable query. Its verbatim text is not shipped.
    "ra_rft_released": _ra_rft(
        "correction",
        "NIL",
        "state within the <answer> </answer> tags that no relevant segment exists and explain why, and then "
        "write a corrected query that the video answers",
    ),
    "time_r1": _GROUNDING + _TIMESTEP_THINKING + _TIME_ANSWER + _REFUSAL,
    "videochat_r1": _GROUNDING + _TIME_ANSWER.replace("Then, provide", "Provide") + _REFUSAL,
    "videochat_r1_think": _GROUNDING + _PLAIN_THINKING + _TIME_ANSWER + _REFUSAL,
    "qwen2_5_vl": (
        'Give the query: "{query}", when does the described content occur in the video? Answer with the start '
        'and end times in seconds within the <answer> </answer> tags, in the format "start time to end time", '
        'for example "12.54 to 17.83". ' + _REFUSAL
    ),
}

# The output each template asks for: its tag blocks, in order (`rarft_plugin.parsing.follows_blocks`
# checks a response against them; the evaluation reports the share that does).
OUTPUT_BLOCKS: dict[str, tuple[str, ...]] = {
    "ra_rft": ("think", "answer", "correct"),
    "ra_rft_released": ("think", "answer", "correction"),
    "time_r1": ("think", "answer"),
    "videochat_r1": ("answer",),
    "videochat_r1_think": ("think", "answer"),
    "qwen2_5_vl": ("answer",),
}

# The outputs the evaluation's format check accepts for each template: its own blocks, and for the
# released template the paper's `<correct>` tag too (the released code writes `<correction>`, the
# paper `<correct>`: either names the same block).
COMPLIANT_BLOCKS: dict[str, tuple[tuple[str, ...], ...]] = {
    **{name: (blocks,) for name, blocks in OUTPUT_BLOCKS.items()},
    "ra_rft_released": (OUTPUT_BLOCKS["ra_rft_released"], OUTPUT_BLOCKS["ra_rft"]),
}

# Each base model's native template: for evaluating the untrained baseline (the paper's baseline
# rows). RA-RFT training always uses `ra_rft` (or `ra_rft_released`): the format and correction
# rewards need the think / answer / correct output that only that instruction asks for.
TEMPLATE_FOR_MODEL: dict[str, str] = {
    "time_r1": "time_r1",
    "videochat_r1": "videochat_r1",
    "videochat_r1_think": "videochat_r1_think",
    "qwen2_5_vl_7b": "qwen2_5_vl",
    "qwen3_vl_8b": "qwen2_5_vl",  # no paper row: the plain Qwen instruct prompt of the paper's Qwen baseline
}


# Each reward variant's template: the one whose output blocks that variant's format reward checks
# (`rarft_plugin.rewards`), and so the one its training prompts are built with.
TEMPLATE_FOR_VARIANT: dict[str, str] = {"paper": "ra_rft", "released": "ra_rft_released"}


def instruction(template: str, query: str) -> str:
    """The instruction text of `template` for `query`.

    >>> instruction("videochat_r1", "a man opens a door")[:52]
    'To accurately pinpoint the event "a man opens a door'
    """
    if template not in TEMPLATES:
        raise KeyError(f"unknown prompt template {template!r}; expected one of {sorted(TEMPLATES)}")
    return TEMPLATES[template].format(query=query.strip())


def build_messages(template: str, query: str, *, purpose: Purpose = "train") -> list[dict]:
    """Chat messages with one video item, in the released code's order for `purpose`.

    Content items carry only `type` and `text` so that every row of a dataset has one schema.
    """
    text = {"type": "text", "text": instruction(template, query)}
    video = {"type": "video", "text": ""}
    if purpose == "train":
        return [{"role": "user", "content": [text, video]}]
    return [
        {"role": "system", "content": [{"type": "text", "text": EVAL_SYSTEM_MESSAGE}]},
        {"role": "user", "content": [video, text]},
    ]
