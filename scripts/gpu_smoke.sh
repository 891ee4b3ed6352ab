#!/usr/bin/env bash
# The main job for real on one GPU, in minutes: OpenRLHF's train_ppo_ray through rarft-train and the one-GPU
# recipe (Ray, vLLM video rollouts through the rarft executor, DeepSpeed ZeRO-3), on a tiny random model of a
# model family (SMOKE_FAMILY: qwen2_5_vl, the default, or qwen3_vl) with generated videos for the first
# HI-Charades items, then `rarft-eval infer` on the checkpoint it wrote.
#
#   scripts/gpu_smoke.sh OUT [more rarft-train flags]
#
# OUT gets assets/ (model, videos, training and evaluation prompts; reused when present), run/ (checkpoints, final weights),
# train.log (appended: a run that OpenRLHF resumes from its checkpoint in the same OUT keeps the steps of
# the first part; `curve` reads the last line of each step) and infer.jsonl. Environment: PYTHON (default
# python3), RARFT_MODEL (default: the tiny model; the learning-curve benchmark passes a warm-started one),
# SMOKE_ITEMS (items of HI-Charades, default 8), SMOKE_INFER (0: no `rarft-eval infer` at the end),
# RARFT_SBERT_MODEL / RARFT_SBERT_DEVICE as for rarft-train; RARFT_NUM_GPUS, RARFT_VLLM_GPUS and RARFT_VLLM_TP place it
# on several GPUs (the recipes' layouts: recipes/common.sh). Needs a CUDA GPU and the training stack (docs/gpu.md).
# tests/gpu/test_train_ppo_ray.py runs it and checks every step and the checkpoint; tests/gpu/test_multi_gpu.py
# does so on every GPU of the machine in each layout.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: scripts/gpu_smoke.sh OUT [more rarft-train flags]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
# vLLM 0.26's sampler imports flashinfer unless told not to; the packed stack has none.
export VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}
# DeepSpeed JIT-builds FusedAdam on first use and cannot parse the "9.0a" arch that torch lists for Hopper.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
# NVLink multicast stays off unless the caller turns it on: on a shared host it can take the GPUs out of service.
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

[[ -f $out/assets/train.jsonl ]] || "$python" "$repo/scripts/gpu_run.py" assets --out "$out/assets" \
    --items "${SMOKE_ITEMS:-8}" --family "${SMOKE_FAMILY:-qwen2_5_vl}"
# assets written before `assets` wrote the evaluation file (--eval.dataset): it holds the same rows
[[ -f $out/assets/eval.jsonl ]] || cp "$out/assets/train.jsonl" "$out/assets/eval.jsonl"
RARFT_MODEL=${RARFT_MODEL:-$out/assets/model} RARFT_DATA=$out/assets/train.jsonl RARFT_OUTPUT=$out/run \
PYTHON=$python "$repo/recipes/single_gpu_smoke.sh" \
    --ds.attn_implementation sdpa --vllm.enforce_eager --data.max_len 2048 --rollout.max_new_tokens 64 \
    --vllm.gpu_memory_utilization 0.3 "$@" 2>&1 | tee -a "$out/train.log"
[[ ${SMOKE_INFER:-1} == 0 ]] && exit 0
"$python" -m rarft_eval.cli infer --model "$out/run" --data "$out/assets/data.json" --video-root "$out/assets/videos" \
    --out "$out/infer.jsonl" --backend hf --device cuda --dtype bf16 --batch-size 8 --max-new-tokens 32
