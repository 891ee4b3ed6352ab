"""`rarft-eval infer` on a GPU (bf16, batched) with each model family's tiny random stand-in over generated videos."""

import json
import time

import pytest

from rarft_eval.cli import main as rarft_eval
from rarft_plugin.demo import SAMPLES
from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_test_video

pytestmark = pytest.mark.gpu


def test_batched_inference_on_gpu(tmp_path, capsys, tiny_model):
    data = SAMPLES / "hi_vtg_charades_sample.json"
    videos = tmp_path / "videos"
    for item in json.loads(data.read_text()):
        write_test_video(videos / item["video"].split("/")[-1], seconds=item["duration"], fps=4, size=(224, 168))
    model = tiny_model
    timings = {}
    for batch in ("1", "8"):
        out = tmp_path / f"preds{batch}.jsonl"
        started = time.perf_counter()
        assert (
            rarft_eval(
                [
                    "infer",
                    "--model",
                    str(model),
                    "--data",
                    str(data),
                    "--video-root",
                    str(videos),
                    "--out",
                    str(out),
                    "--backend",
                    "hf",
                    "--device",
                    "cuda",
                    "--dtype",
                    "bf16",
                    "--batch-size",
                    batch,
                    "--max-new-tokens",
                    "32",
                ]
            )
            == 0
        )
        timings[batch] = time.perf_counter() - started
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in rows] == ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1", "3:0", "3:1"]
    assert rarft_eval(["evaluate", str(tmp_path / "preds8.jsonl"), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    print(f"GPU infer, 8 queries: batch 1 {timings['1']:.2f} s, batch 8 {timings['8']:.2f} s (model load included)")


def test_the_default_dtype_on_a_gpu_is_the_released_fp16(tmp_path):
    """No --dtype on a GPU: fp16, as the released inference; recorded beside the predictions."""
    data = SAMPLES / "hi_vtg_charades_sample.json"
    videos = tmp_path / "videos"
    for item in json.loads(data.read_text()):
        write_test_video(videos / item["video"].split("/")[-1], seconds=item["duration"], fps=4, size=(224, 168))
    model = build_tiny_qwen2_5_vl(tmp_path / "tiny")
    out = tmp_path / "preds.jsonl"
    args = ["infer", "--model", str(model), "--data", str(data), "--video-root", str(videos), "--out", str(out)]
    assert rarft_eval([*args, "--backend", "hf", "--device", "cuda", "--max-new-tokens", "16"]) == 0
    meta = json.loads((tmp_path / "preds.jsonl.meta.json").read_text())
    assert (meta["dtype"], meta["device"]) == ("fp16", "cuda")
