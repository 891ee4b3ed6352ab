#!/usr/bin/env bash
# Does RA-RFT training learn? One GPU, minutes: a tiny random Qwen2.5-VL is warm-started on the answer format
# (scripts/gpu_run.py warmstart, until ~30% of its samples are in format, so GRPO groups differ), then trained
# with GRPO through OpenRLHF's train_ppo_ray (scripts/gpu_smoke.sh) for 24 steps on 16 HI-Charades items
# (32 queries, 4 prompts x 8 samples a step, 3 episodes). Writes OUT/curve.{json,md,png}: the mean reward and
# each reward component per step against the start, and each step's time shares (rarft's code vs vLLM
# generation vs OpenRLHF's training phases).
#
#   bench/gpu_learning_curve.sh OUT [more rarft-train flags]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/gpu_learning_curve.sh OUT [more rarft-train flags]}
shift
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
"$python" "$repo/scripts/gpu_run.py" assets --out "$out/assets" --items 16
"$python" "$repo/scripts/gpu_run.py" warmstart --assets "$out/assets" --out "$out/warm" --target-format-rate 0.3
RARFT_MODEL=$out/warm "$repo/scripts/gpu_smoke.sh" "$out" \
    --data.max_samples 32 --rollout.batch_size 4 --rollout.n_samples_per_prompt 8 --train.batch_size 32 \
    --train.num_episodes 3 --rollout.max_new_tokens 96 --actor.adam.lr 5e-4 --algo.kl.init_coef 0.01 \
    --ckpt.save_steps 1000 "$@"
"$python" "$repo/scripts/gpu_run.py" curve --log "$out/train.log" --warmstart "$out/warm/warmstart.json" --out "$out"
