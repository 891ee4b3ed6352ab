"""The real main job on one GPU: `scripts/gpu_smoke.sh` -> rarft-train -> OpenRLHF's train_ppo_ray (Ray, vLLM video
rollouts through the rarft executor, DeepSpeed ZeRO-3) on each model family's tiny stand-in (the `family` fixture)
and generated videos, then `rarft-eval infer` on the checkpoint it wrote. Needs the training stack (vllm, ray,
deepspeed) and a GPU. With `--algo.advantage.is_correction_level token` OpenRLHF logs `vllm_kl`, the mean
rollout-minus-training log-prob of the sampled tokens. On the random stand-in it is the mask's share,
`masked_sampling_kl` (0.0120: the rollout samples with the special tokens masked and its log-probs are taken after
the mask, training scores the full softmax; logged 0.0118 and 0.0116 for Qwen3-VL on an H100), plus what the two
forwards disagree on; a random model barely depends on its input, so positions are checked by
tests/gpu/test_vllm_video_positions.py and by `vllm_kl` on a warm-started model (bench/gpu_learning_curve.sh: ~1e-3).

The run is a function (`run_smoke`) and its checks are tests/support/smoke_checks.py's, which
tests/gpu/test_multi_gpu.py runs on several GPUs too and the CPU suite holds to a real run's log. Set RARFT_SMOKE_OUT
to keep the run's folder (train.log, run/, infer.jsonl) for inspection (one family per run).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.smoke_checks import EVAL_SAMPLES, REPO, check_evaluations, check_outputs, check_steps

pytestmark = pytest.mark.gpu
for _module in ("vllm", "ray", "deepspeed"):
    pytest.importorskip(_module)


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


def test_train_ppo_ray_runs_every_step_and_writes_a_checkpoint_that_infers(tmp_path, family):
    out = Path(os.environ.get("RARFT_SMOKE_OUT") or tmp_path / "smoke")
    log = run_smoke(out, SMOKE_FAMILY=family.NAME)
    check_steps(log, [1, 2], out / "assets" / "model")  # 8 prompts, 4 per rollout batch, one update each
    check_evaluations(log, [1, 2])
    check_outputs(out, family.MODEL_TYPES)
