"""The SBERT score's texts (released vs answer) and the evaluation's options, with a recording stand-in encoder."""

import pytest

from eval.evaluate import evaluate, sbert_pair, sbert_scores
from eval.metrics import Judgement
from eval.predictions import Prediction

RESPONSE = (
    "<think><timestep>0.00 to 3.00</timestep> a man sits.</think> <answer>He sits, he does not run."
    "</answer> <correction>a man sits</correction>"
)
REFERENCE = "<answer>The man sits; nobody runs.</answer><correct>a man sits</correct>"


def irrelevant(output, reference=REFERENCE, index=0):
    return Prediction(
        f"{index}:1", "v.mp4", "a man runs", output, False, None, reference, ("Action/FineGrainedAction",), "strong"
    )


class RecordingSimilarity:
    """Returns the given cosines in turn and records the pairs it was asked about."""

    model_path = "stand-in"

    def __init__(self, *values):
        self.values, self.pairs = list(values), []

    def cosine_pairs(self, pairs):
        self.pairs += pairs
        return [self.values.pop(0) for _ in pairs]


@pytest.mark.parametrize(
    "text, reading, expected",
    [
        # released: the response minus the correction, every tag stripped (think text included), vs the
        # reference without its <answer> tags, the <correct> block kept as written
        (
            "released",
            "released",
            (
                "0.00 to 3.00 a man sits. He sits, he does not run.",
                "The man sits; nobody runs.<correct>a man sits</correct>",
            ),
        ),
        # answer: the answer text vs the reference's answer block
        ("answer", "released", ("He sits, he does not run.", "The man sits; nobody runs.")),
        ("answer", "last_block", ("He sits, he does not run.", "The man sits; nobody runs.")),
    ],
)
def test_sbert_pair(text, reading, expected):
    assert sbert_pair(irrelevant(RESPONSE), text, reading) == expected


def test_sbert_pair_answer_text_follows_the_reading():
    output = "<think>it is absent</think> The video shows no running."
    assert sbert_pair(irrelevant(output), "answer", "released")[0] == "The video shows no running."
    assert sbert_pair(irrelevant(output), "answer", "last_block")[0] == output


def test_unknown_sbert_text_is_refused():
    with pytest.raises(ValueError, match="unknown SBERT text"):
        sbert_pair(irrelevant(RESPONSE), "whole")


def test_sbert_scores_only_refused_irrelevant_queries_with_a_reference():
    predictions = [
        irrelevant(RESPONSE, index=0),
        irrelevant("<answer>1 to 2</answer>", index=1),
        irrelevant(RESPONSE, reference="", index=2),
        irrelevant("<correction>only</correction>", index=3),
    ]
    judgements = [Judgement(True, None), Judgement(False, (1.0, 2.0)), Judgement(True, None), Judgement(True, None)]
    similarity = RecordingSimilarity(0.7)
    # 0: compared; 1: answered (no score); 2: no reference (not eligible); 3: nothing left to compare: 0
    assert sbert_scores(predictions, judgements, similarity) == [0.7, None, None, 0.0]
    assert len(similarity.pairs) == 1


@pytest.mark.parametrize("sbert_text", ["released", "answer"])
def test_evaluate_records_the_options(sbert_text):
    similarity = RecordingSimilarity(-0.2)
    record, items = evaluate([irrelevant(RESPONSE)], similarity=similarity, sbert_text=sbert_text, reading="last_block")
    assert record.judge["sbert_text"] == sbert_text and record.judge["answer_reading"] == "last_block"
    assert items[0].sbert == 0.0  # cosine clipped to [0, 1]
    assert similarity.pairs == [sbert_pair(irrelevant(RESPONSE), sbert_text, "last_block")]


def test_evaluate_refuses_an_unknown_sbert_text():
    with pytest.raises(ValueError, match="unknown SBERT text"):
        evaluate([irrelevant(RESPONSE)], similarity=RecordingSimilarity(), sbert_text="whole")


def test_released_sbert_text_with_the_real_model(sbert):
    """The two texts give different scores on the same response (the released one sees the think block)."""
    released = sbert.cosine_pairs([sbert_pair(irrelevant(RESPONSE), "released")])[0]
    answer = sbert.cosine_pairs([sbert_pair(irrelevant(RESPONSE), "answer")])[0]
    assert 0 < released < 1 and 0 < answer < 1 and abs(released - answer) > 0.01
