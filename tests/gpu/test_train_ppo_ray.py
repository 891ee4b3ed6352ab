"""The real main job on one GPU: `scripts/gpu_smoke.sh` -> rarft-train -> OpenRLHF's train_ppo_ray (Ray, vLLM video
rollouts through the rarft executor, DeepSpeed ZeRO-3) on each model family's tiny stand-in (the `family` fixture)
and generated videos, then `rarft-eval infer` on the checkpoint it wrote. Needs the training stack (vllm, ray,
deepspeed) and a GPU. With `--algo.advantage.is_correction_level token` OpenRLHF logs `vllm_kl`, the mean
rollout-minus-training log-prob of the sampled tokens. On the random stand-in it is the mask's share,
`masked_sampling_kl` (0.0120: the rollout samples with the special tokens masked and its log-probs are taken after
the mask, training scores the full softmax; logged 0.0118 and 0.0116 for Qwen3-VL on an H100), plus what the two
forwards disagree on; a random model barely depends on its input, so positions are checked by
tests/gpu/test_vllm_video_positions.py and by `vllm_kl` on a warm-started model (bench/gpu_learning_curve.sh: ~1e-3).

The run and its checks are functions (`run_smoke`, `check_steps`, `check_evaluations`, `check_outputs`) that
tests/gpu/test_multi_gpu.py runs on several GPUs too. Set RARFT_SMOKE_OUT to keep the run's folder (train.log,
run/, infer.jsonl) for inspection (one family per run).
"""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from rarft_plugin.rewards import REWARD_BOUNDS, REWARD_NAMES
from rarft_plugin.stand_ins import masked_sampling_kl
from rarft_plugin.trainer_logs import MONITORS

pytestmark = pytest.mark.gpu
for _module in ("vllm", "ray", "deepspeed"):
    pytest.importorskip(_module)

REPO = Path(__file__).resolve().parents[2]
GPU_RUN = runpy.run_path(str(REPO / "scripts" / "gpu_run.py"))
step_logs, eval_logs = GPU_RUN["step_logs"], GPU_RUN["eval_logs"]
EVAL_SAMPLES = 2  # per evaluation prompt


def run_smoke(out: Path, *flags: str, **env: str) -> str:
    """scripts/gpu_smoke.sh OUT with vllm_kl logged and an evaluation every step, `flags` after those, `env` over the
    environment; asserts it succeeded and returns what it added to OUT/train.log (a rerun in OUT appends)."""
    log = out / "train.log"
    before = log.stat().st_size if log.is_file() else 0
    evaluation = ["--eval.dataset", str(out / "assets" / "eval.jsonl"), "--eval.steps", "1"]
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_smoke.sh"), str(out), "--algo.advantage.is_correction_level", "token"]
        + [*evaluation, "--eval.n_samples_per_prompt", str(EVAL_SAMPLES), *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", **env},
        timeout=1500,
    )
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    with open(log, "rb") as handle:
        handle.seek(before)
        return handle.read().decode(errors="replace")


def check_steps(log: str, steps: list[int], model: Path) -> None:
    """Every step of `steps` logged every reward within its bounds, rarft's timings and monitors, and `vllm_kl` within
    0.005 of the mask's share for the random stand-in `model`: training scored what the rollout sampled."""
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
        assert abs(status["vllm_kl"] - masked) < 0.005, (status["step"], status["vllm_kl"], masked)
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


def test_train_ppo_ray_runs_every_step_and_writes_a_checkpoint_that_infers(tmp_path, family):
    out = Path(os.environ.get("RARFT_SMOKE_OUT") or tmp_path / "smoke")
    log = run_smoke(out, SMOKE_FAMILY=family.NAME)
    check_steps(log, [1, 2], out / "assets" / "model")  # 8 prompts, 4 per rollout batch, one update each
    check_evaluations(log, [1, 2])
    check_outputs(out, family.MODEL_TYPES)
