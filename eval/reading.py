"""A prediction's response as the evaluation reads it, parsed once (`read`): every judge, the SBERT score and
the format checks of `rarft-eval evaluate` take what they need from its `Reading`, never from `model_output`.

The readings are the released evaluation's (docs/eval.md, "rarft-eval vs the released evaluation"), through
the parsers training uses too (`rarft_plugin.parsing`, `rarft_plugin.task_metrics`):

- the answer text: every complete `<think>` block removed, the first complete `<answer>` block, else what
  is left (`evaluation_answer`); the rule judge reads its segment (`rule_segment`: none = a refusal), the
  LLM judges are shown it;
- the SBERT texts: the response minus its correction, tags stripped, think included (`sbert_response`),
  against the reference without its `<answer>` tags (`sbert_reference`);
- the shape: the response read without the end-of-turn markers it ends with (`without_end_of_turn`) has
  its template's output blocks (`complies`), is empty, or was cut off (as `infer` recorded it, else it ends
  inside a block never closed: `unclosed_block`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rarft_plugin.parsing import (
    ChatMarkers,
    evaluation_answer,
    extract_segment,
    sbert_response,
    unclosed_block,
    without_end_of_turn,
)
from rarft_plugin.schema import sbert_reference
from rarft_plugin.task_metrics import complies

from .predictions import Prediction

__all__ = ["ANSWER_READING", "SBERT_TEXT", "Reading", "read"]

# What metrics.json records of how its responses were read (`judge.answer_reading`, `judge.sbert_text`).
ANSWER_READING = "released"
SBERT_TEXT = "released"


@dataclass(frozen=True, slots=True)
class Reading:
    """What the evaluation reads in one response (module docstring)."""

    answer: str  # the answer text: the rule judge's input, what the LLM judges are shown
    segment: tuple[float, float] | None  # the rule reading's segment in it; None: the response refuses
    sbert_texts: tuple[str, str] | None  # (response, reference) the SBERT score compares; None: not asked for
    compliant: bool  # exactly the template's output blocks (or blocks it also accepts)
    empty: bool  # nothing but whitespace
    truncated: bool  # stopped by the generation limit
    truncation_recorded: bool  # `truncated` is infer's record, not read from the text
    end_of_turn: bool  # ended with an end-of-turn marker (<|im_end|>), read without it


def read(prediction: Prediction, template: str, *, sbert: bool = False, chat: ChatMarkers | None = None) -> Reading:
    """Parse one response, against the output blocks of `template` (`rarft_plugin.prompts.OUTPUT_BLOCKS`)
    and the end-of-turn markers of `chat` (default: the default model family's); with `sbert`, its SBERT
    texts too (a run without the SBERT score skips them: about a sixth of the reading's time).

    `segment` is `rule_segment(model_output)` on the answer text already read.

    >>> reading = read(Prediction("0:1", "v", "q", "<think>0 to 3</think> <answer>No.</answer><|im_end|>",
    ...                           False, None, "<answer>No dog.</answer>", (), "strong"), "qwen2_5_vl", sbert=True)
    >>> reading.answer, reading.segment, reading.sbert_texts, reading.compliant, reading.end_of_turn
    ('No.', None, ('0 to 3 No.', 'No dog.'), False, True)
    """
    output = prediction.model_output
    answer = evaluation_answer(output)
    text = without_end_of_turn(output, chat)
    recorded = prediction.truncated is not None
    return Reading(
        answer=answer,
        segment=extract_segment(answer),
        sbert_texts=(sbert_response(output), sbert_reference(prediction.gt_output)) if sbert else None,
        compliant=complies(text, template),
        empty=not text.strip(),
        truncated=prediction.truncated if recorded else unclosed_block(text) is not None,
        truncation_recorded=recorded,
        end_of_turn=len(text) < len(output.rstrip()),
    )
