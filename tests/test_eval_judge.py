"""LLM judges: reply parsing (tables + adversarial replies) and scoring against a local
OpenAI-compatible server on 127.0.0.1 (caching, retries, re-asking, failures, resuming)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.openai_server import ChatServer, Fault, system_text, user_text

from rarft_eval.evaluate import evaluate
from rarft_eval.judge import MAX_JUDGED_CHARS, LlmJudge, parse_categories, parse_relevance, parse_score
from rarft_eval.metrics import ExplanationMean, Judgement
from rarft_eval.predictions import Prediction
from rarft_plugin.llm_client import ChatClient


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('["Object/ObjectExistence", "Attribute/Counting"]', (("Object/ObjectExistence", "Attribute/Counting"), 0)),
        ("[]", ((), 0)),
        ("['Scene/SceneExistence']", (("Scene/SceneExistence",), 0)),  # Python literal
        (
            '```json\n[ "object / object existence", "ObjectMoving" ]\n```',
            (("Object/ObjectExistence", "Object/ObjectMoving"), 0),
        ),
        ('["Object/ObjectExistence", "Object/ObjectExistence"]', (("Object/ObjectExistence",), 0)),
        ('["Made/Up", "Action/ActionSequence"]', (("Action/ActionSequence",), 1)),
        ('Reasoning [see rules]. Final: ["Attribute/Comparison"]', (("Attribute/Comparison",), 0)),  # last list
        ("None apply.", None),
        ("[1, 2]", None),
        ('["unterminated', None),
    ],
)
def test_parse_categories(reply, expected):
    assert parse_categories(reply) == expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("'score': 4.0", 4.0),
        ("{'score': 3.7}", 3.7),
        ('{"score": 2}', 2.0),
        ("Score: 1.5", 1.5),
        ('**Score:** "2.5"', 2.5),
        ("score = 4.9", 4.9),
        ("3.5", 3.5),
        ("'score': 7", 5.0),  # clipped to the scale
        ("'score': -1", 0.0),
        ("I cannot evaluate this.", None),
        ("", None),
    ],
)
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


@pytest.mark.parametrize(
    "reply, refused, segment",
    [
        ('{"relevant": true, "start": 1.0, "end": 4.0}', False, (1.0, 4.0)),
        ('Sure: {"relevant": false, "start": null, "end": null}', True, None),
        ("{'relevant': True, 'start': '2.5', 'end': 3}", False, (2.5, 3.0)),
        ('{"relevant": "no"}', True, None),
        ('{"relevant": true, "start": 5, "end": 1}', False, None),  # reversed span: answered, no usable segment
        ('{"relevant": true}', False, None),
        ('{"relevant": true, "start": 1e999, "end": 1e999}', False, None),
        ('{"relevant": "maybe"}', None, None),
        ("relevant: yes", None, None),
    ],
)
def test_parse_relevance(reply, refused, segment):
    judged = parse_relevance(reply)
    if refused is None:
        assert judged is None
    else:
        assert (judged.refused, judged.segment) == (refused, segment)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("[]{}'\",:.-+0123456789 scoreelvantrufObject/ExistencNn\\")), max_size=120)
)
def test_reply_parsers_never_raise(reply):
    categories = parse_categories(reply)
    assert categories is None or all(isinstance(c, str) for c in categories[0])
    score = parse_score(reply)
    assert score is None or 0.0 <= score <= 5.0
    judged = parse_relevance(reply)
    assert judged is None or isinstance(judged, Judgement)


def prediction(
    i, relevant, output, gt_output="The man sits on a bed, not a chair.", categories=("Scene/SceneExistence",)
):
    return Prediction(
        id=f"{i}:{int(not relevant)}",
        video=f"v{i}.mp4",
        query=f"query {i}",
        model_output=output,
        gt_relevant=relevant,
        gt_timestamp=(0.0, 5.0) if relevant else None,
        gt_output=gt_output if not relevant else "0.00 to 5.00",
        gt_categories=tuple(categories) if not relevant else (),
        hardness_level=None,
    )


REFUSAL = "<think>t</think> <answer>No segment: the man sits on a bed.</answer> <correct>q</correct>"
PREDICTIONS = [
    prediction(0, True, "<answer>0.00 to 5.00</answer>"),
    prediction(0, False, REFUSAL),
    prediction(1, True, "<answer>I think it happens around 1 to 4 s.</answer>"),
    prediction(1, False, "<answer>2.00 to 3.00</answer>"),  # wrongly answered: no explanation judging
    prediction(2, False, REFUSAL, gt_output=""),  # no reference answer: no explanation judging
]


def responder(request):
    system, user = system_text(request), user_text(request)
    if system.startswith("You read the response"):
        if "No segment" in user:
            return '{"relevant": false, "start": null, "end": null}'
        return 'Sure: {"relevant": true, "start": 1.0, "end": 4.0}'
    if system.startswith("You are a strict multi-label"):
        return '["Scene/SceneExistence", "Made/Up"]'
    return "'score': 3.5"


def judge(server, tmp_path, **options):
    return LlmJudge(
        ChatClient(base_url=server.url, model="judge", cache_path=tmp_path / "cache.jsonl", backoff_s=0.01, **options)
    )


def test_llm_judge_scores_and_caches(tmp_path):
    with ChatServer(responder) as server:
        record, items = evaluate(
            PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True
        )
        # relevance for all 5, explanations (RT-IoU + LLM score) only for the one refused query with a reference
        assert len(server.requests) == 5 + 2
        again, _ = evaluate(PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True)
        assert len(server.requests) == 7  # everything came from the disk cache
    assert again.metrics.ra_iou == record.metrics.ra_iou and again.judge["usage"]["cached"] == 7
    assert [row.refused for row in items] == [False, True, False, False, True]
    assert items[0].segment == (1.0, 4.0)  # the LLM's span, not the parser's
    assert record.metrics.explanation.rt_iou == ExplanationMean(all=0.5, refused=1.0, n=2, unmeasured=0)
    assert record.metrics.explanation.llm_score.all == pytest.approx(3.5 / 2)
    assert record.judge["unknown_categories"] == 1 and record.judge["model"] == "judge"


def test_long_responses_are_cut_before_judging(tmp_path):
    long = prediction(0, False, "<answer>No segment. " + "x" * 50_000 + "</answer>")
    with ChatServer(responder) as server:
        evaluate([long], judge=judge(server, tmp_path), relevance_by_llm=True)
    assert len(user_text(server.requests[0])) < MAX_JUDGED_CHARS + 500


def test_retries_faults_then_succeeds(tmp_path):
    attempts = {}

    def flaky(request):
        """Each distinct request fails three ways (429, 503, dropped connection) before it is answered."""
        key = json.dumps(request["messages"])
        attempts[key] = attempts.get(key, 0) + 1
        faults = {1: Fault(status=429), 2: Fault(status=503), 3: Fault(drop=True)}
        return faults.get(attempts[key]) or responder(request)

    with ChatServer(flaky) as server:
        record, _ = evaluate(PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True)
    assert record.judge["usage"]["retries"] >= 3 * 7 and record.judge["failed"] == {}
    assert record.metrics.explanation.llm_score.refused == 3.5


def test_unreadable_reply_is_asked_again_once(tmp_path):
    asked = {}

    def forgetful(request):
        """The score judge rambles on its first try."""
        if system_text(request).startswith("You are an evaluator"):
            asked["score"] = asked.get("score", 0) + 1
            return "The response is fairly consistent." if asked["score"] == 1 else "'score': 2.0"
        return responder(request)

    with ChatServer(forgetful) as server:
        record, _ = evaluate(PREDICTIONS, judge=judge(server, tmp_path), llm_explanations=True)
    assert asked["score"] == 2 and record.judge["unreadable"] == {}
    assert record.metrics.explanation.llm_score.refused == 2.0


def test_failed_and_unreadable_judgements_are_unmeasured_not_zero(tmp_path):
    def broken(request):
        system = system_text(request)
        if system.startswith("You are an evaluator"):
            return Fault(status=400)  # not retryable: fails for good
        if system.startswith("You are a strict multi-label"):
            return "no idea"
        return "gibberish"

    with ChatServer(broken) as server:
        record, items = evaluate(
            PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True
        )
    report = record.judge
    assert report["failed"] == {"llm-score": 1} and report["unreadable"] == {"relevance": 5, "rt-iou": 1}
    # relevance fell back to the core parser's reading
    assert [row.refused for row in items] == [False, True, False, False, True]
    # the one refused query's score failed: no mean at all, not the wrongly answered query's 0
    assert record.metrics.explanation.llm_score == ExplanationMean(all=None, refused=None, n=1, unmeasured=1)
    calls = report["calls"]
    assert {name: (c["asked"], c["judged"], c["failed"], c["unreadable"]) for name, c in calls.items()} == {
        "relevance": (5, 0, 0, 5),
        "rt-iou": (1, 0, 0, 1),
        "llm-score": (1, 0, 1, 0),
    }
    assert "HTTP 400" in calls["llm-score"]["last_error"] and calls["relevance"]["last_error"] is None


def test_resumes_only_what_failed(tmp_path):
    """A run whose endpoint failed for some requests, rerun against a healthy one, asks only those."""

    def half_down(request):
        if system_text(request).startswith("You are an evaluator"):
            return Fault(status=400)
        return responder(request)

    with ChatServer(half_down) as server:
        evaluate(PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True)
    with ChatServer(responder) as server:
        record, _ = evaluate(PREDICTIONS, judge=judge(server, tmp_path), relevance_by_llm=True, llm_explanations=True)
    assert [system_text(r)[:15] for r in server.requests] == ["You are an eval"]
    assert record.metrics.explanation.llm_score.refused == 3.5


def test_every_judge_is_shown_the_answer_text(tmp_path):
    """As the released evaluation reads it: think removed, the first answer block."""
    shown = "He sits, he does not run."
    output = (
        "<think><timestep>9.00 to 12.00</timestep> a man sits.</think> <answer>He sits, he does not run."
        "</answer><answer>0.00 to 3.00</answer> <correct>a man sits</correct>"
    )
    with ChatServer(
        lambda request: (
            '{"relevant": false, "start": null, "end": null}'
            if system_text(request).startswith("You read the response")
            else responder(request)
        )
    ) as server:
        evaluate(
            [prediction(0, False, output)],
            judge=judge(server, tmp_path),
            relevance_by_llm=True,
            llm_explanations=True,
        )
    texts = [user_text(request) for request in server.requests]
    assert len(texts) == 3
    assert all(shown in text and "9.00 to 12.00" not in text and "0.00 to 3.00" not in text for text in texts)
