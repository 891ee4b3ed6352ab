#!/usr/bin/env bash
# A short RA-RFT run on one GPU with a small model: checks the whole stack (Ray, vLLM video rollouts,
# rewards, DeepSpeed update, checkpoint) before a full run. Same setup as the paper recipes
# (recipes/common.sh) with fewer prompts, samples and steps; RARFT_NUM_GPUS=N runs it on N GPUs (its batch divides
# over 1, 2, 4 and 8). `single_gpu_smoke.sh --help` explains the variables.
set -euo pipefail
RECIPE=single_gpu_smoke
RECIPE_TITLE="short RA-RFT run on one GPU with a small model (2 optimizer steps)"
RECIPE_MODEL="a small Qwen2.5-VL-family model, e.g. Qwen2.5-VL-3B-Instruct (Hugging Face: Qwen/Qwen2.5-VL-3B-Instruct)"
RECIPE_SIZE=3b
RECIPE_HARDWARE="one GPU: by the memory estimate below a 3B model fits an H200 (141 GB) as is, and on 80 GB the recipe adds --ref.offload itself; a few minutes"
RECIPE_DEFAULT_GPUS=1
RECIPE_EXTRA_ARGS=(
    --data.max_samples 8                  # 8 prompts ...
    --rollout.batch_size 4 --rollout.n_samples_per_prompt 4
    --train.batch_size 16                 # ... × 4 samples / 16 per step = 2 steps in one episode
    --train.num_episodes 1
    --vllm.gpu_memory_utilization 0.4
    --ckpt.save_steps 1                   # exercises checkpoint saving too
)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rarft_recipe_main "$@"
