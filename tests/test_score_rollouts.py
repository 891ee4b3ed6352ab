import json

import pytest

from rarft_plugin import demo, score_rollouts
from rarft_plugin.demo import SAMPLES
from rarft_plugin.rewards import score


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_sample_rollouts_score_like_the_library(tmp_path, sbert):
    out = tmp_path / "scored.jsonl"
    assert score_rollouts.main([str(SAMPLES / "rollouts.jsonl"), "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [json.loads(line) for line in (SAMPLES / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == len(inputs)
    for row, given in zip(rows, inputs, strict=True):
        assert row["note"] == given["note"]
        assert row["rewards"] == pytest.approx(score(given["response"], row["label"], similarity=sbert), abs=1e-5)


def test_released_variant_flag(tmp_path):
    out = tmp_path / "scored.jsonl"
    rollout = {
        "response": "<think>x</think> <answer>1 to 3</answer> <correction>NIL</correction>",
        "label": {"relevant": True, "timestamp": [1, 2], "duration": 10, "query": "q"},
    }
    score_rollouts.main(
        [str(write_lines(tmp_path / "r.jsonl", [rollout])), "--out", str(out), "--variant", "released", "--quiet"]
    )
    rewards = json.loads(out.read_text())["rewards"]
    # released: <correction> tag, IoU 0.5 x end-distance factor 0.9, NIL rewarded for a relevant query
    assert (rewards["format"], rewards["refuse_iou"], rewards["correction"]) == (1.0, pytest.approx(0.45), 1.0)


def test_correction_flag(tmp_path, sbert):
    """Copying the query into the correction: eq. 7 pays for it, the contrastive correction scores -1."""
    label = {
        "relevant": False,
        "timestamp": None,
        "duration": 20.0,
        "query": "a man cuts a steak",
        "query_relevant": "a man cooks pasta in the kitchen",
    }
    rollout = {
        "response": "<think>t</think> <answer>No.</answer> <correct>a man cuts a steak</correct>",
        "label": label,
    }
    source = write_lines(tmp_path / "r.jsonl", [rollout])
    corrections = {}
    for mode in ("similarity", "contrastive"):
        out = tmp_path / f"{mode}.jsonl"
        assert score_rollouts.main([str(source), "--out", str(out), "--correction", mode, "--quiet"]) == 0
        corrections[mode] = json.loads(out.read_text())["rewards"]["correction"]
    assert corrections["similarity"] == pytest.approx(score(rollout["response"], label, similarity=sbert)["correction"])
    assert corrections["similarity"] > 0.3 and corrections["contrastive"] == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{broken", "line 1: not valid JSON"),
        ({"label": {"relevant": True}}, "line 1: field response: must be a string"),
        ({"response": "x"}, "needs either 'label'"),
        ({"response": "x", "label": {"relevant": True, "duration": 5, "query": "q"}}, "field timestamp"),
        ({"response": "x", "data": "hi_vtg_charades_sample.json", "example": "99:0"}, "no example '99:0'"),
    ],
)
def test_bad_rollout_files_are_named(tmp_path, capsys, line, message):
    source = write_lines(tmp_path / "bad.jsonl", [line])
    (tmp_path / "hi_vtg_charades_sample.json").write_text((SAMPLES / "hi_vtg_charades_sample.json").read_text())
    assert score_rollouts.main([str(source), "--out", str(tmp_path / "o.jsonl")]) == 2
    error = capsys.readouterr().err
    assert str(source) in error and message in error
    assert not (tmp_path / "o.jsonl").exists()  # nothing half-written


def test_demo_runs_every_step(tmp_path, capfd):
    assert demo.main(["--out", str(tmp_path)]) == 0
    printed = capfd.readouterr().out  # the steps run as processes of their own
    assert "refuse_iou" in printed and "strong hard-irrelevant, refused" in printed
    assert len((tmp_path / "rollout_rewards.jsonl").read_text().splitlines()) == 23
    assert len((tmp_path / "train_prompts.jsonl").read_text().splitlines()) == 8
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["count"]["queries"] == 15
    assert {"strong", "moderate", "weak", "shuffled", "original"} <= set(metrics["by_difficulty"])
