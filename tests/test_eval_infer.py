"""`rarft-eval infer` with a tiny random Qwen2.5-VL on CPU over generated videos."""

import json

import pytest

from eval.cli import main as rarft_eval
from rarft_plugin.testing import build_tiny_qwen2_5_vl, write_test_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory, official_data):
    root = tmp_path_factory.mktemp("infer")
    items = json.loads((official_data / "human_anno.json").read_text())[:3]
    data = root / "eval.json"
    data.write_text(json.dumps(items))
    videos = root / "videos"
    for index, item in enumerate(items):
        write_test_video(videos / item["video"].split("/")[-1], seconds=4 + index, size=(112, 84))
    return build_tiny_qwen2_5_vl(root / "tiny"), data, videos


def infer(setup, out, *extra):
    model, data, videos = setup
    return rarft_eval(["infer", "--model", str(model), "--data", str(data), "--video-root", str(videos),
                       "--out", str(out), "--backend", "hf", "--batch-size", "4", "--max-new-tokens", "6", *extra])


def test_infer_writes_one_prediction_per_query_in_order(setup, tmp_path):
    out = tmp_path / "preds.jsonl"
    assert infer(setup, out) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1"]
    assert all(isinstance(r["model_output"], str) for r in rows)
    assert [r["gt_relevant"] for r in rows] == [True, False] * 3
    assert rarft_eval(["score", str(out), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0


def test_batched_equals_one_by_one(setup, tmp_path):
    infer(setup, tmp_path / "batched.jsonl")
    infer(setup, tmp_path / "single.jsonl", "--batch-size", "1")
    batched = [json.loads(line)["model_output"] for line in (tmp_path / "batched.jsonl").read_text().splitlines()]
    single = [json.loads(line)["model_output"] for line in (tmp_path / "single.jsonl").read_text().splitlines()]
    assert batched == single  # greedy decoding with left padding changes nothing


def test_resume_predicts_only_what_is_missing(setup, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    infer(setup, out)
    complete = out.read_text().splitlines()
    out.write_text("\n".join(complete[:2]) + "\n")  # as if killed after the first batch
    capsys.readouterr()
    assert infer(setup, out) == 0
    assert "4 predicted now" in capsys.readouterr().out
    assert out.read_text().splitlines() == complete


def test_shards_partition_the_queries(setup, tmp_path):
    ids = []
    for index in range(2):
        out = tmp_path / f"shard{index}.jsonl"
        infer(setup, out, "--shard", f"{index}/2")
        ids += [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1"]


def test_missing_videos_fail_before_loading_the_model(setup, tmp_path, capsys):
    model, data, _ = setup
    assert rarft_eval(["infer", "--model", str(model), "--data", str(data), "--video-root", str(tmp_path),
                       "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "3 video(s) not found" in capsys.readouterr().err
