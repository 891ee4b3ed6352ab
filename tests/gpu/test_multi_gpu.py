"""The main job on every GPU of the machine, in each layout of the recipes that fits it (scripts/gpu_multi.py:
OpenRLHF's hybrid engine, with engines of 1 or 2 GPUs, and vLLM engines on GPUs of their own): scripts/gpu_smoke.sh
with RARFT_NUM_GPUS = the GPU count (the tiny Qwen2.5-VL, 2 steps), then the checks of the one-GPU smoke
(tests/gpu/test_train_ppo_ray.py): every step and evaluation logged with every reward and monitor, `vllm_kl` within
0.005 of the mask's share on every step, the checkpoint read by `rarft-eval infer`. The hybrid layout then resumes:
the same OUT with one more episode continues from the checkpoint of step 2 with steps 3 and 4 (DeepSpeed states
saved and loaded by every rank). Skipped with fewer than 2 GPUs; a layout that does not fit the GPU count is skipped.

Each layout takes minutes (Ray, vLLM and DeepSpeed start per run): on a machine that allows 10 minutes a command,
run one at a time by its node id, `tests/gpu/test_multi_gpu.py::test_the_smoke_runs_on_every_gpu_in_each_layout[LAYOUT]`
with LAYOUT hybrid, hybrid_tp2, separate or separate_tp2. Set RARFT_SMOKE_OUT to keep the runs' folders (OUT/LAYOUT).
"""

import os
import runpy
from pathlib import Path

import pytest
from support.smoke_checks import REPO, check_evaluations, check_outputs, check_steps

from .test_train_ppo_ray import run_smoke

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
MULTI = runpy.run_path(str(REPO / "scripts" / "gpu_multi.py"))
GPUS = torch.cuda.device_count()
if GPUS < 2:
    pytest.skip(f"needs 2 GPUs or more, {GPUS} here", allow_module_level=True)
QWEN2_5_VL = ("qwen2_5_vl",)  # the smoke's default family (SMOKE_FAMILY)


@pytest.mark.parametrize("layout", [layout.name for layout in MULTI["LAYOUTS"]])
def test_the_smoke_runs_on_every_gpu_in_each_layout(tmp_path, layout):
    env = MULTI["LAYOUT_NAMES"][layout].env(GPUS)
    if env is None:
        pytest.skip(f"{layout} does not fit {GPUS} GPUs")
    out = Path(os.environ.get("RARFT_SMOKE_OUT") or tmp_path) / layout
    log = run_smoke(out, **env)
    check_steps(log, [1, 2], out / "assets" / "model")
    check_evaluations(log, [1, 2])
    check_outputs(out, QWEN2_5_VL)
    if layout != "hybrid":
        return
    resumed = run_smoke(out, "--train.num_episodes", "2", SMOKE_INFER="0", **env)
    assert "Loading the checkpoint" in resumed  # the actor's DeepSpeed states of step 2 (--ckpt.load_enable)
    check_steps(resumed, [3, 4], out / "assets" / "model")
    check_evaluations(resumed, [3, 4])
