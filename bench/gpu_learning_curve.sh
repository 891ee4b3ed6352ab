#!/usr/bin/env bash
# Does RA-RFT training learn? One GPU, minutes. A tiny random Qwen2.5-VL is warm-started on the answer format
# (scripts/gpu_run.py warmstart, until ~30% of its samples are in format, so GRPO groups differ), then trained
# with GRPO through OpenRLHF's train_ppo_ray (scripts/gpu_smoke.sh) on the 8 queries of 4 HI-Charades items
# (4 prompts x 8 samples a step, 15 episodes: 30 steps, each query seen 15 times). The model is sampled before
# and after (`probe`: 32 samples per query, the same queries) and OUT/curve.{json,md,png} gets the per-step
# rollout rewards, the before/after comparison and each step's time shares (rarft's code vs vLLM generation
# vs OpenRLHF's training phases). Resumable: assets, the warm start and the "before" probe are reused.
#
#   bench/gpu_learning_curve.sh OUT [more rarft-train flags]
#
# Why 8 queries: a 2-layer random model learns slowly; over 24 steps on 32 queries (each seen 3 times) the
# per-step means stayed within their noise at lr 1e-4 and 5e-4 (docs/gpu.md has both runs).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/gpu_learning_curve.sh OUT [more rarft-train flags]}
shift
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
run() { "$python" "$repo/scripts/gpu_run.py" "$@"; }
[[ -f $out/assets/train.jsonl ]] || run assets --out "$out/assets" --items "${CURVE_ITEMS:-4}"
[[ -f $out/warm/warmstart.json ]] || run warmstart --assets "$out/assets" --out "$out/warm" --target-format-rate 0.3
[[ -f $out/probe_before.json ]] || run probe --model "$out/warm" --assets "$out/assets" --samples 32 \
    --out "$out/probe_before.json"
# token-mean: with seq-mean-token-mean (the recipes' TRL-era averaging) a failed response's per-token penalty
# shrinks as it grows, so long garbage is penalised least; on this tiny model at lr 3e-4 responses grew from 45
# to 55 tokens and the format rate fell from 0.46 to 0.20 (docs/gpu.md). CURVE_AGG=seq-mean-token-mean repeats it.
# is_correction_level token: vLLM returns each sampled token's log-prob and OpenRLHF logs `vllm_kl`, the mean
# rollout-minus-training log-prob: the end-to-end check that training scores what the rollout sampled.
RARFT_MODEL=$out/warm SMOKE_INFER=0 "$repo/scripts/gpu_smoke.sh" "$out" \
    --rollout.batch_size 4 --rollout.n_samples_per_prompt 8 --train.batch_size 32 \
    --train.num_episodes "${CURVE_EPISODES:-15}" --rollout.max_new_tokens 96 --actor.adam.lr "${CURVE_LR:-3e-4}" \
    --actor.loss_agg_mode "${CURVE_AGG:-token-mean}" --algo.kl.init_coef 0.01 --algo.advantage.is_correction_level token --ckpt.save_steps 1000 "$@"
run probe --model "$out/run" --assets "$out/assets" --samples 32 --out "$out/probe_after.json"
run curve --log "$out/train.log" --warmstart "$out/warm/warmstart.json" --before "$out/probe_before.json" \
    --after "$out/probe_after.json" --out "$out"
