"""`rarft-demo make-assets`: stand-in videos named as the records need, and the tiny model."""

import json
import os

import pytest

from rarft_plugin.dataset import load_examples, resolve_videos
from rarft_plugin.demo import main as demo
from rarft_plugin.video import probe


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
def test_without_data_the_samples_their_videos_and_the_tiny_model(tmp_path):
    out = tmp_path / "assets"
    assert demo(["make-assets", "--out", str(out)]) == 0
    for sample in sorted((out / "samples").iterdir()):
        examples, _ = load_examples(sample)
        resolve_videos(examples, video_root=out / "videos", source=sample)  # every video is there
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl" and "vision_config" in config
    assert not [name for name in os.listdir(out / "videos") if name.startswith(".")]  # no partial clip left


def test_missing_data_file_is_a_one_line_error(tmp_path, capsys):
    assert demo(["make-assets", "--out", str(tmp_path / "a"), "--data", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.json" in err and not (tmp_path / "a").exists()
