"""A response read once (`rarft_eval.reading.read`): the SBERT score's texts, the readings every judge shares, and the
evaluation's settings, with a recording stand-in encoder."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parsing_evaluation import TAGGY

from rarft_eval.evaluate import evaluate, sbert_scores
from rarft_eval.metrics import Judgement
from rarft_eval.predictions import Prediction
from rarft_eval.reading import read
from rarft_plugin.parsing import evaluation_answer, sbert_response, unclosed_block, without_end_of_turn
from rarft_plugin.schema import sbert_reference
from rarft_plugin.task_metrics import complies

RESPONSE = (
    "<think><timestep>0.00 to 3.00</timestep> a man sits.</think> <answer>He sits, he does not run."
    "</answer> <correction>a man sits</correction>"
)
REFERENCE = "<answer>The man sits; nobody runs.</answer><correct>a man sits</correct>"


def irrelevant(output, reference=REFERENCE, index=0, truncated=None):
    return Prediction(
        f"{index}:1",
        "v.mp4",
        "a man runs",
        output,
        False,
        None,
        reference,
        ("Action/FineGrainedAction",),
        "strong",
        truncated=truncated,
    )


class RecordingSimilarity:
    """Returns the given cosines in turn and records the pairs it was asked about."""

    model_path = "stand-in"

    def __init__(self, *values):
        self.values, self.pairs = list(values), []

    def cosine_pairs(self, pairs):
        self.pairs += pairs
        return [self.values.pop(0) for _ in pairs]


def test_the_sbert_texts_are_the_released_ones():
    """The response minus the correction, every tag stripped (think text included), vs the reference without
    its <answer> tags, the <correct> block kept as written."""
    assert read(irrelevant(RESPONSE), "ra_rft", sbert=True).sbert_texts == (
        "0.00 to 3.00 a man sits. He sits, he does not run.",
        "The man sits; nobody runs.<correct>a man sits</correct>",
    )


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(TAGGY, st.sampled_from(["", "<|im_end|>", "<|im_end|>\n"])).map("".join),
    st.sampled_from([None, True, False]),
    st.sampled_from(["ra_rft", "ra_rft_released", "qwen2_5_vl"]),
)
def test_a_reading_is_what_each_parser_reads(output, truncated, template):
    """One parse gives what the rule judge, the LLM judges, the SBERT score and the format checks read."""
    reading = read(irrelevant(output, truncated=truncated), template, sbert=True)
    text = without_end_of_turn(output)
    assert reading.answer == evaluation_answer(output)
    assert reading.sbert_texts == (sbert_response(output), sbert_reference(REFERENCE))
    assert reading.compliant == complies(text, template) and reading.empty == (not text.strip())
    assert reading.truncated == (truncated if truncated is not None else unclosed_block(text) is not None)
    assert reading.truncation_recorded == (truncated is not None)
    assert reading.end_of_turn == (text != output.rstrip())


def test_sbert_scores_only_refused_irrelevant_queries_with_a_reference():
    predictions = [
        irrelevant(RESPONSE, index=0),
        irrelevant("<answer>1 to 2</answer>", index=1),
        irrelevant(RESPONSE, reference="", index=2),
        irrelevant("<correction>only</correction>", index=3),
    ]
    readings = [read(p, "ra_rft", sbert=True) for p in predictions]
    judgements = [Judgement(True, None), Judgement(False, (1.0, 2.0)), Judgement(True, None), Judgement(True, None)]
    similarity = RecordingSimilarity(0.7)
    # 0: compared; 1: answered (no score); 2: no reference (not eligible); 3: nothing left to compare: 0
    assert sbert_scores(predictions, readings, judgements, similarity) == [0.7, None, None, 0.0]
    assert similarity.pairs == [readings[0].sbert_texts]


def test_evaluate_records_how_it_read_and_scored():
    similarity = RecordingSimilarity(-0.2)
    record, items = evaluate([irrelevant(RESPONSE)], similarity=similarity)
    assert record.judge["sbert_text"] == "released" and record.judge["answer_reading"] == "released"
    assert record.judge["sbert_model"] == "stand-in"
    assert items[0].sbert == 0.0  # cosine clipped to [0, 1]
    assert similarity.pairs == [read(irrelevant(RESPONSE), "ra_rft", sbert=True).sbert_texts]


def test_without_sbert_no_texts_are_read_or_recorded():
    assert read(irrelevant(RESPONSE), "ra_rft").sbert_texts is None
    record, items = evaluate([irrelevant(RESPONSE)])
    assert record.judge["sbert_text"] is None and record.judge["sbert_model"] is None and items[0].sbert is None


def test_llm_judging_without_a_judge_is_refused():
    with pytest.raises(ValueError, match="needs an LlmJudge"):
        evaluate([irrelevant(RESPONSE)], relevance_by_llm=True)


def test_released_sbert_text_with_the_real_model(sbert):
    """The released texts score the response with its think text: not the answer text alone."""
    released = sbert.cosine_pairs([read(irrelevant(RESPONSE), "ra_rft", sbert=True).sbert_texts])[0]
    answer_only = sbert.cosine_pairs([("He sits, he does not run.", "The man sits; nobody runs.")])[0]
    assert 0 < released < 1 and 0 < answer_only < 1 and abs(released - answer_only) > 0.01
