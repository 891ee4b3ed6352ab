"""The checks of the GPU smoke run (tests/gpu/test_train_ppo_ray.py, tests/gpu/test_multi_gpu.py) on its train.log
and output folder. Here, without the training stack, so that the CPU suite holds them to a real run's log
(tests/test_smoke_checks.py: support/openrlhf_0_11_2_qwen3_vl_smoke.log, the Qwen3-VL smoke on an H100)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from rarft_plugin.rewards import REWARD_BOUNDS, REWARD_NAMES
from rarft_plugin.stand_ins import masked_sampling_kl
from rarft_plugin.trainer_logs import MONITORS

REPO = Path(__file__).resolve().parents[2]
GPU_RUN = runpy.run_path(str(REPO / "scripts" / "gpu_run.py"))
step_logs, eval_logs = GPU_RUN["step_logs"], GPU_RUN["eval_logs"]
EVAL_SAMPLES = 2  # per evaluation prompt
KL_TOLERANCE = 0.005  # vllm_kl beyond the mask's share: what the two bf16 forwards may disagree on


def check_steps(log: str, steps: list[int], model: Path) -> None:
    """Every step of `steps` logged every reward within its bounds, rarft's timings and monitors, and `vllm_kl` within
    KL_TOLERANCE of the mask's share for the random stand-in `model`: training scored what the rollout sampled."""
    masked = masked_sampling_kl(model)
    statuses = step_logs(log)
    assert [s["step"] for s in statuses] == steps
    for status in statuses:
        for name in REWARD_NAMES:
            low, high = REWARD_BOUNDS["paper"][name]
            assert low <= status[name] <= high, (status["step"], name, status[name])
        assert status["rarft/malformed"] == 0.0  # special tokens are biased away at sampling
        assert all(status[f"rarft/{part}_s"] >= 0 for part in ("video_prep", "generate", "reward"))
        assert status["timing/generation"] > 0 and status["timing/ppo_train"] > 0
        assert abs(status["vllm_kl"] - masked) < KL_TOLERANCE, (status["step"], status["vllm_kl"], masked)
        # rarft-train's step logs (rarft_plugin.trainer_logs): every monitor whose population the step had (a random
        # model answers nothing, and a rate over no answers is left out), the groups that teach nothing
        had = {m.name for m in MONITORS if m.population != "answered" or status["rarft/answered"] > 0}
        assert {f"rarft/monitor/{name}" for name in had} <= set(status) and "rarft/zero_variance_groups" in status
        assert 0.0 <= status["score"] <= 1.0  # the task score's mean (rarft_plugin.rollout_logs)


def check_evaluations(log: str, steps: list[int], prompts: int = 8) -> None:
    """The in-loop task metrics after every step (--eval.steps 1)."""
    evaluations = eval_logs(log)
    assert [e["step"] for e in evaluations] == steps
    for logs in evaluations:
        assert logs["rarft/queries"] == float(prompts * EVAL_SAMPLES)
        assert 0.0 <= logs["rarft/ra_iou/mIoU"] <= 1.0 and 0.0 <= logs["rarft/format_compliance"] <= 1.0
        assert any(key.startswith(("rarft/strong/", "rarft/moderate/", "rarft/weak/")) for key in logs)


def check_outputs(out: Path, model_types: tuple[str, ...]) -> None:
    """The final weights, a DeepSpeed checkpoint, and `rarft-eval infer`'s answer to every query of the data."""
    assert json.loads((out / "run" / "config.json").read_text())["model_type"] in model_types  # final weights
    assert any((out / "run" / "checkpoints").glob("*_hf")) or any((out / "run" / "checkpoints").iterdir())
    rows = [json.loads(line) for line in (out / "infer.jsonl").read_text().splitlines()]
    queries = sum(len(item["GRPO"]) for item in json.loads((out / "assets" / "data.json").read_text()))
    assert len(rows) == queries and all(isinstance(r["model_output"], str) for r in rows)
