"""bench/vision_attention.py on a tiny tower (CPU): it runs every installed implementation on the same clip, they agree,
and the window count is the one transformers' tower loops over."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = runpy.run_path(str(REPO / "bench" / "vision_attention.py"))
TINY = {"depth": 4, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "fullatt_block_indexes": [3],
        "out_hidden_size": 64}  # fmt: skip


@pytest.mark.parametrize(
    "grid, count",
    [
        ((28, 18, 26), 336),  # the paper-size Charades-like clip: 56 frames of 252x364
        ((4, 8, 12), 8),  # merged 4 x 6, windows of 4 x 4 merged units: 1 x 2 a temporal patch
        ((150, 6, 12), 300),  # the ActivityNet-like clip's 300 frames of 84x168: merged 3 x 6, 2 windows each
    ],
)
def test_windows_are_counted_per_temporal_patch(grid, count):
    from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS

    assert BENCH["windows"](grid, PUBLISHED_CONFIGS["3b"]["vision_config"]) == count


def test_the_installed_implementations_agree_on_one_clip(tmp_path, capsys):
    from rarft_plugin.models.window_attention import restore_window_attention

    restore_window_attention()  # the baseline is transformers' own loop
    out = tmp_path / "vision.json"
    argv = ["--device", "cpu", "--frames", "8", "--height", "112", "--width", "168", "--repeats", "1",
            "--implementations", "sdpa,sdpa_grouped,eager", "--vision-overrides", json.dumps(TINY),
            "--out", str(out)]  # fmt: skip
    assert BENCH["main"](argv) == 0
    result = json.loads(out.read_text())
    assert set(result["seconds"]) == {"sdpa", "sdpa_grouped", "eager"} and result["skipped"] == []
    assert max(result["max_difference"].values()) < 1e-4 and result["speed_vs_sdpa"]["sdpa"] == 1.0
    assert result["clip"]["patches"] == 4 * 8 * 12 and result["windowed_blocks"] == 3
    assert "windows in each of 3 windowed blocks" in capsys.readouterr().out


@pytest.mark.parametrize("extension, ran", [(True, True), (False, False)])
def test_flash_attention_runs_only_with_its_cuda_extension(monkeypatch, extension, ran):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (object() if extension else None) if name == "flash_attn_2_cuda" else real(name, *a),
    )
    assert BENCH["installed"]("flash_attention_2") == ran and BENCH["installed"]("sdpa")
