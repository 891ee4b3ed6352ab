import json
import os
import re
from pathlib import Path

import pytest

from data_prep.cli import main as prep
from rarft_plugin.dataset import load_examples
from rarft_plugin.labels import parse_label
from rarft_plugin.prompts import build_messages
from rarft_plugin.testing import write_test_video
from rarft_plugin.video import VideoSpec

OFFICIAL = ("hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json")


def placeholder_videos(source: Path, root: Path) -> Path:
    """One small non-empty file per video name the records use (enough for `--no-probe`)."""
    root.mkdir(parents=True, exist_ok=True)
    for item in json.loads(source.read_text()):
        (root / Path(item["video"]).name).write_bytes(b"\0")
    return root


def linked_videos(source: Path, root: Path) -> Path:
    """One real (tiny) clip, hard-linked under every video name the records use: each name resolves to itself."""
    root.mkdir(parents=True, exist_ok=True)
    clip = write_test_video(root.parent / "one-clip.mp4", seconds=2, fps=5, size=(32, 32))
    for item in json.loads(source.read_text()):
        target = root / Path(item["video"]).name
        if not target.exists():
            os.link(clip, target)
    return root


@pytest.mark.parametrize("name", OFFICIAL)
def test_every_official_record_round_trips(official_data, tmp_path, name):
    source = official_data / name
    root = linked_videos(source, tmp_path / "videos")
    out = tmp_path / "out.jsonl"
    assert prep(["to-openrlhf", str(source), str(out), "--video-root", str(root), "--template", "ra_rft"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    examples, _ = load_examples(source)
    assert [row["id"] for row in rows] == [e.key for e in examples]
    for row, example in zip(rows, examples):
        assert parse_label(row["label"]) == example.label
        spec = VideoSpec.parse(row["video"])
        assert Path(spec.path) == (root / Path(example.item.video).name).resolve()
        assert (spec.start, spec.end) == (example.item.video_start, example.item.video_end)
        assert row["input"] == build_messages("ra_rft", example.label.query)


@pytest.mark.parametrize("ratio, relevant, irrelevant", [("1:3", 365, 1097), ("1:1", 1097, 1097), ("0:1", 0, 1097)])
def test_ratio(official_data, tmp_path, ratio, relevant, irrelevant):
    source = official_data / "hi_vtg_charades.json"
    root = placeholder_videos(source, tmp_path / "videos")
    out = tmp_path / "out.jsonl"
    args = ["--video-root", str(root), "--ratio", ratio, "--seed", "3", "--no-probe"]
    prep(["to-openrlhf", str(source), str(out), *args])
    labels = [json.loads(json.loads(line)["label"]) for line in out.read_text().splitlines()]
    assert (sum(l["relevant"] for l in labels), sum(not l["relevant"] for l in labels)) == (relevant, irrelevant)
    again = tmp_path / "again.jsonl"
    prep(["to-openrlhf", str(source), str(again), *args])
    assert again.read_text() == out.read_text()  # seeded


def test_missing_videos_are_all_reported_and_nothing_written(official_data, tmp_path, capsys):
    source = official_data / "human_anno.json"
    root = placeholder_videos(source, tmp_path / "videos")
    for victim in ("72LJ3.mp4", "9RKTE.mp4"):
        (root / victim).unlink()
    out = tmp_path / "out.jsonl"
    assert prep(["to-openrlhf", str(source), str(out), "--video-root", str(root)]) == 2
    error = capsys.readouterr().err
    assert "2 video(s) not found" in error and "72LJ3.mp4" in error and "9RKTE.mp4" in error
    assert "record 0" in error and not out.exists()


def _truncated(clip: Path, path: Path) -> None:
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda clip, path: path.write_bytes(b"not a video at all"), "cannot decode video"),
        (_truncated, "cannot decode video|truncated"),
        (lambda clip, path: write_test_video(path, seconds=0.1, fps=10), "at least 2 are needed"),  # one frame
    ],
)
def test_unusable_videos_are_all_reported_with_their_records_and_nothing_written(official_data, tmp_path, capsys,
                                                                                 damage, message):
    source = official_data / "human_anno.json"
    root = linked_videos(source, tmp_path / "videos")
    clip = write_test_video(tmp_path / "faststart.mp4", seconds=20, fps=10, faststart=True)
    for victim in ("72LJ3.mp4", "9RKTE.mp4"):
        (root / victim).unlink()
        damage(clip, root / victim)
    out = tmp_path / "out.jsonl"
    assert prep(["to-openrlhf", str(source), str(out), "--video-root", str(root)]) == 2
    error = capsys.readouterr().err
    assert "2 video clip(s) cannot be used" in error and "72LJ3.mp4" in error and "9RKTE.mp4" in error
    assert re.search(message, error) and "record 0" in error and not out.exists()


def test_windows_beyond_the_video_are_reported(tmp_path, capsys):
    root = tmp_path / "videos"
    write_test_video(root / "a.mp4", seconds=10)
    item = {"video": "a.mp4", "query_text": "q", "timestamp": [1.0, 2.0], "duration": 30.0, "video_start": 0.0,
            "video_end": 30.0, "GRPO": [{"q": "q", "a": "1.00 to 2.00", "r": True}]}
    source = tmp_path / "in.json"
    source.write_text(json.dumps([item]))
    assert prep(["to-openrlhf", str(source), str(tmp_path / "out.jsonl"), "--video-root", str(root)]) == 2
    assert "record 0" in (error := capsys.readouterr().err) and "beyond the video's 10.00 s" in error


def test_prompt_rows_feed_openrlhf_prompt_dataset(official_data, tmp_path):
    """OpenRLHF's own preprocessing (apply_chat_template) yields one video placeholder per prompt."""
    from openrlhf.datasets.prompts_dataset import preprocess_data
    from transformers import AutoProcessor

    from rarft_plugin.testing import build_tiny_qwen2_5_vl

    processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp_path / "tiny"))
    source = official_data / "human_anno.json"
    root = linked_videos(source, tmp_path / "videos")
    out = tmp_path / "out.jsonl"
    prep(["to-openrlhf", str(source), str(out), "--video-root", str(root), "--purpose", "eval"])
    import datasets

    rows = datasets.load_dataset("json", data_files=str(out), split="train")
    prompt, label = preprocess_data(rows[0], input_key="input", label_key="label",
                                    apply_chat_template=processor.apply_chat_template)
    assert prompt.count("<|video_pad|>") == 1 and "You are a video analysis expert." in prompt
    assert prompt.index("<|video_pad|>") < prompt.index("To accurately pinpoint")  # eval: video first
    assert parse_label(label).relevant is True and rows[0]["id"] == "0:0"
    assert VideoSpec.parse(rows[0]["video"]).path.endswith("72LJ3.mp4")
