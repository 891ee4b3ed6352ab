"""The OpenRLHF prompt row: one line of the JSONL that `rarft-prep to-openrlhf` writes and rarft-train trains on.

    {"input": [chat messages with one video item],
     "video": "{\\"path\\": ..., \\"video_start\\": ..., \\"video_end\\": ...}",
     "label": "<label JSON, rarft_plugin.schema>", "datasource": "<input file stem>", "id": "ITEM:QUERY"}

OpenRLHF 0.11 reads it through the dataset flags in `DATASET_FLAGS` (rarft-train passes them): it
applies the chat template to `input`, and hands the rollout executor `label` as the label and the
`video` field as the rollout's `images` (OpenRLHF has an image key but no video key). The video
field is `rarft_plugin.video.VideoSpec`'s JSON, with an absolute path: Ray workers do not share the
launcher's working directory.

`make_row` writes a row (the converter), `row_problems` lists what is wrong with one (rarft-train's
checks), `parse_row` reads one, and `video_of` / `label_of` read the two fields the executor receives.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TypedDict

from rarft_plugin.clips import VideoError
from rarft_plugin.errors import DataError
from rarft_plugin.parsing import find_special_token
from rarft_plugin.prompts import TEMPLATES, Purpose, build_messages, instruction
from rarft_plugin.rewards import variant_label_problems
from rarft_plugin.schema import Label, label_problems, parse_label
from rarft_plugin.video import VideoSpec

__all__ = [
    "DATASET_FLAGS",
    "INPUT_KEY",
    "LABEL_KEY",
    "VIDEO_KEY",
    "PromptRow",
    "PromptRowJson",
    "label_of",
    "make_row",
    "parse_row",
    "row_problems",
    "video_of",
]

INPUT_KEY = "input"
VIDEO_KEY = "video"
LABEL_KEY = "label"
# The train_ppo_ray flags that make OpenRLHF read rows of this layout (None marks a switch): `input` holds
# chat messages, so the chat template applies.
DATASET_FLAGS: dict[str, str | None] = {
    "--data.input_key": INPUT_KEY,
    "--data.label_key": LABEL_KEY,
    "--data.image_key": VIDEO_KEY,
    "--data.apply_chat_template": None,
}

ChatMessages = list[dict]  # `rarft_plugin.prompts.build_messages`: role + content items of type text / video


class PromptRowJson(TypedDict):
    """A row as written: the label is a JSON string so that every row of a dataset has one schema."""

    input: ChatMessages
    video: str
    label: str
    datasource: str
    id: str


@dataclass(frozen=True)
class PromptRow:
    """A row as read back."""

    messages: ChatMessages
    video: VideoSpec
    label: Label
    datasource: str | None = None
    id: str | None = None


def make_row(
    label: Label, video: VideoSpec, *, template: str, purpose: Purpose = "train", datasource: str, row_id: str
) -> PromptRowJson:
    """The row of one query: the prompt `template` builds from its query, its clip and its label.

    >>> from rarft_plugin.schema import parse_label
    >>> row = make_row(parse_label({"relevant": False, "duration": 9, "query": "a dog barks"}), VideoSpec("/v/a.mp4"),
    ...                template="ra_rft", datasource="demo", row_id="0:1")
    >>> row["video"], parse_row(row).label.query, row_problems(row)
    ('{"path": "/v/a.mp4", "video_start": null, "video_end": null}', 'a dog barks', [])
    """
    return PromptRowJson(
        input=build_messages(template, label.query, purpose=purpose),
        video=video.to_json(),
        label=json.dumps(label.to_json(), ensure_ascii=False),
        datasource=datasource,
        id=row_id,
    )


def video_of(value: object) -> VideoSpec:
    """The clip of a row's video field, as OpenRLHF hands it to the executor (`images`). Raises VideoError."""
    if value is None:
        raise VideoError(f"the sample has no video; run with --data.image_key {VIDEO_KEY}", field=VIDEO_KEY)
    return VideoSpec.parse(value)


def label_of(value: object) -> Label:
    """The label of a row's label field (a JSON string as written; a dict is accepted). Raises DataError."""
    try:
        return parse_label(value)  # parse_label refuses, naming the field, anything but a dict or JSON text
    except DataError as error:
        raise DataError(error.message, field=f"{LABEL_KEY}.{error.field}" if error.field else LABEL_KEY) from None


def row_problems(row: object, template: str | None = None, variant: str | None = None) -> list[DataError]:
    """Everything wrong with one row, each naming its field (file and line are the caller's).

    `template`: the prompt template the row must be built with (None: any); `variant`: the reward
    variant that will score its label (None: no check).
    """
    if not isinstance(row, dict):
        return [DataError("expected a JSON object")]
    problems = [DataError("missing", field=key) for key in (INPUT_KEY, VIDEO_KEY, LABEL_KEY) if key not in row]
    label = None
    if LABEL_KEY in row:
        try:
            label = label_of(row[LABEL_KEY])
        except DataError as error:
            problems.append(error)
        else:
            problems += [
                DataError(f"the {variant} reward variant cannot use this label: {problem}", field=LABEL_KEY)
                for problem in (variant_label_problems(label, variant) if variant else [])
            ]
            # its texts (the span rule is the launcher's, for training files only)
            problems += [
                DataError(error.message, field=f"{LABEL_KEY}.{error.field}")
                for error in label_problems(label, spans=False)
            ]
    if INPUT_KEY in row:
        problems += _input_problems(row[INPUT_KEY], label, template)
    if VIDEO_KEY in row:
        try:
            spec = video_of(row[VIDEO_KEY])
        except VideoError as error:
            problems.append(DataError(error.message, field=VIDEO_KEY))
        else:
            if not os.path.isabs(spec.path):
                problems.append(
                    DataError(
                        f"relative path {spec.path!r}: Ray workers do not share the launcher's "
                        "working directory (rarft-prep to-openrlhf writes absolute paths)",
                        field=VIDEO_KEY,
                    )
                )
    return problems


def _input_problems(messages: object, label: Label | None, template: str | None) -> list[DataError]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return [DataError("expected a list of chat messages", field=INPUT_KEY)]
    items = [
        item for m in messages if isinstance(m.get("content"), list) for item in m["content"] if isinstance(item, dict)
    ]
    texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    texts += [item["text"] for item in items if isinstance(item.get("text"), str)]
    markers = {find_special_token(text) for text in texts} - {None}
    problems = [
        DataError(
            f"the prompt holds the special-token marker {marker!r} (it would end a turn of the chat)", field=INPUT_KEY
        )
        for marker in sorted(markers)
    ]
    videos = sum(item.get("type") == "video" for item in items)
    if videos != 1:
        problems.append(DataError(f"expected one video item in the chat, found {videos}", field=INPUT_KEY))
    if template is not None and label is not None:
        texts = {item.get("text") for item in items if item.get("type") == "text"}
        if instruction(template, label.query) not in texts:
            built = [name for name in TEMPLATES if instruction(name, label.query) in texts]
            how = f"built with template {built[0]!r}" if built else "not built from any rarft template"
            problems.append(
                DataError(
                    f"prompt {how}, expected {template!r} (rarft-prep to-openrlhf --template {template})",
                    field=INPUT_KEY,
                )
            )
    return problems


def parse_row(row: object) -> PromptRow:
    """A row read back; raises the first of its `row_problems` (a DataError naming the field)."""
    problems = row_problems(row)
    if problems:
        raise problems[0]
    assert isinstance(row, dict)  # row_problems refuses anything else
    return PromptRow(
        messages=row[INPUT_KEY],
        video=video_of(row[VIDEO_KEY]),
        label=label_of(row[LABEL_KEY]),
        datasource=row.get("datasource"),
        id=row.get("id"),
    )
