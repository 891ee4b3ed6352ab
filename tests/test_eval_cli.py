import json
import random

import pytest

from eval.cli import main as rarft_eval
from eval.predictions import prediction_from_example
from rarft_plugin.dataset import load_examples
from support.openai_server import ChatServer, Fault, system_text


def synthetic_predictions(path, out, seed=0):
    """Model outputs of every kind, including hostile ones, for every query of a file."""
    examples, _ = load_examples(path)
    rng = random.Random(seed)
    outputs = ["<answer>nan to 1e309</answer>", "", "<answer><answer>", "\u202e" * 50, "x" * 20_000]
    rows = []
    for e in examples:
        roll = rng.random()
        if roll < 0.4:
            text = f"<think>t</think> <answer>No segment: {e.label.answer_refusal[:80]}</answer> <correct>q</correct>"
        elif roll < 0.8 and e.label.timestamp:
            text = f"<answer>{e.label.timestamp[0]:.2f} to {e.label.timestamp[1]:.2f}</answer>"
        elif roll < 0.9:
            text = "<answer>0.00 to 3.00</answer>"
        else:
            text = rng.choice(outputs)
        rows.append(prediction_from_example(e, text).to_json())
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


@pytest.mark.parametrize("name", ["hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json"])
def test_every_official_file_scores_end_to_end(official_data, tmp_path, name, sbert):
    preds = tmp_path / "preds.jsonl"
    count = synthetic_predictions(official_data / name, preds)
    assert rarft_eval(["score", str(preds), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["count"]["queries"] == count
    for key in ("ra_iou", "relevance", "vtg_iou", "explanation", "by_difficulty", "by_category"):
        assert key in metrics
    for file in ("report.md", "items.jsonl", "metrics.csv"):
        assert (tmp_path / "run" / file).stat().st_size > 0
    if name == "hi_vtg_charades.json":
        assert set(metrics["by_difficulty"]) == {"strong", "moderate", "weak", "original"}
        assert (tmp_path / "run" / "by_category.png").exists() and (tmp_path / "run" / "by_difficulty.png").exists()


def test_compare_prints_deltas(official_data, tmp_path, capsys):
    for seed in (0, 1):
        preds = tmp_path / f"p{seed}.jsonl"
        synthetic_predictions(official_data / "human_anno.json", preds, seed)
        rarft_eval(["score", str(preds), "--out", str(tmp_path / f"run{seed}"), "--no-sbert"])
    capsys.readouterr()
    assert rarft_eval(["compare", str(tmp_path / "run0"), str(tmp_path / "run1")]) == 0
    table = capsys.readouterr().out
    assert "| ra_iou.mIoU |" in table and "delta" in table


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "0:0"}, "missing field"),
        ({"model_output": 3}, "field model_output: must be a string"),
        ({"gt_categories": ["Object/Unknown"]}, "unknown category"),
        ({"gt_relevant": "yes"}, "field relevant"),
        ({"hardness_level": "extreme"}, "unknown difficulty"),
    ],
)
def test_bad_prediction_files_are_named(tmp_path, capsys, row, message):
    good = {"id": "0:0", "video": "v", "query": "q", "model_output": "", "gt_relevant": True, "gt_timestamp": [0, 1],
            "gt_output": "", "gt_categories": [], "hardness_level": None}
    bad = dict(good, **row) if row != {"id": "0:0"} else {"id": "0:0"}
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(dict(bad, id="0:1")) + "\n")
    assert rarft_eval(["score", str(path), "--out", str(tmp_path / "run"), "--no-sbert"]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "line 2" in error and message in error


def judge_responder(request):
    system = system_text(request)
    response = request["messages"][-1]["content"]
    if system.startswith("You read the response"):
        if "No segment" in response:
            return '{"relevant": false, "start": null, "end": null}'
        return 'Sure: {"relevant": true, "start": 1.0, "end": 4.0}'
    if system.startswith("You are a strict multi-label"):
        return '["Object/ObjectExistence", "Made/Up"]'
    return "'score': 3.5"


def test_llm_judge_against_a_local_server(official_data, tmp_path):
    preds = tmp_path / "preds.jsonl"
    synthetic_predictions(official_data / "human_anno.json", preds)
    with ChatServer(judge_responder) as server:
        args = ["score", str(preds), "--out", str(tmp_path / "run"), "--judge", "llm", "--llm-explanations",
                "--base-url", server.url, "--model", "judge", "--no-sbert"]
        assert rarft_eval(args) == 0
        first = len(server.requests)
        assert rarft_eval(args) == 0  # cached on disk by content: nothing is asked twice
        assert len(server.requests) == first
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["judge"]["relevance"] == "llm" and metrics["judge"]["unknown_categories"] > 0
    assert metrics["explanation"]["llm_score"]["refused"] == pytest.approx(3.5)
    assert 0 < metrics["explanation"]["rt_iou"]["n"] <= metrics["count"]["irrelevant"]


def test_llm_judge_retries_faults(official_data, tmp_path):
    preds = tmp_path / "preds.jsonl"
    synthetic_predictions(official_data / "human_anno.json", preds)
    attempts = {}

    def flaky(request):
        """Each distinct request fails twice (429, then 503) before it is answered."""
        key = json.dumps(request["messages"])
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] == 1:
            return Fault(status=429)
        if attempts[key] == 2:
            return Fault(status=503)
        return judge_responder(request)

    with ChatServer(flaky) as server:
        assert rarft_eval(["score", str(preds), "--out", str(tmp_path / "run"), "--llm-explanations",
                           "--base-url", server.url, "--model", "judge", "--no-sbert", "--retry-backoff", "0.01"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["judge"]["usage"]["retries"] > 0 and metrics["judge"]["failed"] == {}
