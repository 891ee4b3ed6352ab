"""`rarft-demo`: a driver of the command lines on shipped samples; `make-assets`: stand-in videos and the tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rarft_plugin.dataset import load_examples
from rarft_plugin.demo import SAMPLES
from rarft_plugin.demo import main as demo
from rarft_plugin.video import probe, resolve_videos


def test_stand_in_videos_resolve_for_every_record_and_cover_its_clip(tmp_path, capsys):
    records = [
        {"video": "/data/someone/Charades_v1/E6DLK.mp4", "duration": 7.4, "timestamp": [1, 2]},
        {"video": "AO8RW", "duration": 3.0, "timestamp": [0, 5.5]},  # a bare id; the span is the longest need
        {"video": "clips/ID_10.0_16.0.mkv", "duration": None, "video_start": 1.0, "video_end": 6.0},
        {"video": "AO8RW", "duration": 3.0},
    ]
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert demo(["make-assets", "--out", str(tmp_path / "assets"), "--data", str(data), "--no-model"]) == 0
    videos = tmp_path / "assets" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == ["AO8RW.mp4", "E6DLK.mp4", "ID_10.0_16.0.mkv"]
    assert [round(probe(str(videos / name))) for name in ("E6DLK.mp4", "AO8RW.mp4", "ID_10.0_16.0.mkv")] == [8, 6, 6]
    assert not (tmp_path / "assets" / "model").exists()
    assert "videos: 3 made, 0 already there" in capsys.readouterr().out
    before = {p.name: p.stat().st_mtime_ns for p in videos.iterdir()}
    assert demo(["make-assets", "--out", str(tmp_path / "assets"), "--data", str(data), "--no-model"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in videos.iterdir()} == before  # a rerun keeps what exists
    assert "videos: 0 made, 3 already there" in capsys.readouterr().out


@pytest.mark.slow
def test_without_data_the_samples_their_videos_and_the_tiny_model(tmp_path, family):
    out = tmp_path / "assets"
    assert demo(["make-assets", "--out", str(out), "--family", family.NAME]) == 0
    for sample in sorted((out / "samples").iterdir()):
        examples, _ = load_examples(sample)
        resolve_videos(examples, video_root=out / "videos", source=sample)  # every video is there
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] in family.MODEL_TYPES and "vision_config" in config
    assert not [name for name in os.listdir(out / "videos") if name.startswith(".")]  # no partial clip left


@pytest.mark.slow
def test_make_assets_says_what_it_made_and_nothing_else(tmp_path):
    """A fresh process, as a user runs it: no blank lines from the tokenizer trainer, no deepspeed notice."""
    env = {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    done = subprocess.run(
        [sys.executable, "-m", "rarft_plugin.demo", "make-assets", "--out", str(tmp_path / "assets")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=600,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["videos", "model", "samples"]


def test_missing_data_file_is_a_one_line_error(tmp_path, capsys):
    assert demo(["make-assets", "--out", str(tmp_path / "a"), "--data", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.json" in err and not (tmp_path / "a").exists()


def sample_predictions() -> str:
    """The first sample rollout of each query as a prediction line (`rarft_eval.predictions`), the id prefixed with
    its data file: what `rarft_plugin/samples/predictions.jsonl` holds."""
    from rarft_eval.predictions import prediction_from_example

    rows, examples = {}, {}
    for line in (SAMPLES / "rollouts.jsonl").read_text().splitlines():
        rollout = json.loads(line)
        if (rollout["data"], rollout["example"]) in rows:
            continue
        if rollout["data"] not in examples:
            examples[rollout["data"]] = {e.key: e for e in load_examples(SAMPLES / rollout["data"])[0]}
        prediction = prediction_from_example(examples[rollout["data"]][rollout["example"]], rollout["response"])
        rows[rollout["data"], rollout["example"]] = {**prediction.to_json(), "id": f"{rollout['data']}:{prediction.id}"}
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values())


def test_the_shipped_sample_predictions_are_the_first_rollout_of_each_query():
    shipped = (SAMPLES / "predictions.jsonl").read_text(encoding="utf-8")
    assert shipped == sample_predictions(), (
        "rarft_plugin/samples/predictions.jsonl is stale: write sample_predictions() of tests/test_demo.py to it"
    )
    assert len(shipped.splitlines()) == 15


def test_the_demo_runs_the_three_command_lines_in_order(tmp_path, monkeypatch):
    import rarft_plugin.demo as module

    calls = []
    monkeypatch.setattr(module, "run_cli", lambda name, args: calls.append((name, args[0])) or 0)
    assert demo(["--out", str(tmp_path)]) == 0
    assert [name for name, _ in calls] == ["rarft_plugin.score_rollouts", "rarft_prep.cli", "rarft_eval.cli"]
    assert [first for _, first in calls][1:] == ["to-openrlhf", "evaluate"]


def test_the_demo_stops_at_the_first_failing_step(tmp_path, monkeypatch):
    import rarft_plugin.demo as module

    calls = []
    monkeypatch.setattr(module, "run_cli", lambda name, args: calls.append(name) or (2 if len(calls) == 2 else 0))
    assert demo(["--out", str(tmp_path)]) == 2 and len(calls) == 2
