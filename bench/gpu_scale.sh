#!/usr/bin/env bash
# RA-RFT at the paper's scale on one GPU: a random Qwen2.5-VL of the published size (the real vocabulary, no
# downloaded weights), paper-size videos (16 distinct clips a step), the real recipe (recipes/time_r1.sh through
# rarft-train, RARFT_NUM_GPUS=1), measured: step time per phase, tokens, generation tokens/s, rarft's share, GPU
# memory per phase, host memory; OUT/scale.md gets the table and the forecast of the paper's run.
#
#   bench/gpu_scale.sh OUT [RUN ...]        RUN: natural, n200 (default: both, in that order), pool, or assets
#                                           (only build the model, clips and prompts)
#
# Runs (4 steps each: 64 prompts, one per clip, 16 a step, one epoch; each its own folder OUT/RUN):
#   natural  the random model's natural length: it never chooses the end-of-turn token, so every rollout writes
#            to the length limit, --data.max_len minus its prompt (--rollout.max_new_tokens is set to that for
#            the longest prompt; the worst case for generation);
#   n200     --rollout.max_new_tokens 200, the recipe's (still truncated at 200: the length the paper allows);
#   pool     n200 with the executor decoding in a process pool (RARFT_DECODE_PROCESSES=SCALE_POOL_PROCESSES,
#            default 4): the pool inside vLLM's Ray actor, against n200's rarft share and video prep per rollout.
# Decoding: natural and n200 decode in the engine's own process (RARFT_DECODE_PROCESSES=SCALE_DECODE_PROCESSES,
# default 0, the shipped default); each run's run.json and the report name the setting. Call 1 also measures
# the decoders outside training (bench/video_pipeline.py: decord serialised, PyAV threads, 4 processes, on the
# run's own clips). The trainer prefetches the next step's clips while a step trains (RARFT_PREFETCH, default on;
# run.json and the report say which).
# What differs from recipes/time_r1.sh, and why (every other flag is the recipe's):
#   RARFT_NUM_GPUS=1              one GPU: actor, reference and one vLLM engine share it (the recipe then adds
#                                 what its memory estimate says one GPU needs: nothing for the 3B on an H100's
#                                 85.5 GB, --ds.adam_offload for the 7B on an H200; run.json names it);
#   --train.num_episodes 1        the bench's length: 4 steps over the 64 prompts (the recipe: 3 epochs);
#   --rollout.max_new_tokens      the two runs above;
#   --ckpt.save_steps 1000        no DeepSpeed checkpoint: a 3B's is ~55 GB, a 7B's ~140 GB, more than the disk
#                                 of a lent machine holds (the final weights are saved, then deleted);
#   --data.max_samples 64         the 64 prompts of the assets (SCALE_RUN_STEPS x SCALE_PROMPTS);
#   --ds.attn_implementation      SCALE_ATTN, default flash_attention_2 where flash-attn's CUDA extension is
#                                 installed, sdpa where it is not (a packed stack without it: rarft-train refuses
#                                 flash_attention_2 there); run.json and the report name it;
#   SCALE_PROMPTS (default 16)    prompts a step: --rollout.batch_size P --train.batch_size 8P, the assets
#                                 P x SCALE_STEPS clips (3 Charades-like to 1 ActivityNet-like, interleaved); fewer
#                                 make a step fit a lease (the forecast scales what is per rollout to 128).
#   SCALE_SAMPLES (default 8)     rollouts a prompt (--rollout.n_samples_per_prompt; the recipe's G = 8). 16
#                                 prompts x 2 keeps a step's model work at 32 rollouts (one fits a lease) while it
#                                 decodes the paper's 16 distinct clips a step (the executor decodes a clip once for
#                                 its G rollouts): rarft's video cost of a paper step, measured.
# SCALE_GPUS (default 1): RARFT_NUM_GPUS, the recipe's hybrid engine on that many GPUs; a run on more than one goes
# to OUT/RUN_<N>gpu (bench/gpu_multi.sh runs n200 at 1, 2, 4 and 8 this way and writes the scaling table; the
# report and forecast here are the one-GPU runs'). SCALE_SIZE (3b, default, or 7b): the model. By the estimate
# (python -m rarft_plugin.launch.memory) the 7B fits one 141-GB H200 only with its Adam states on the host
# (--ds.adam_offload: ~122 GB) and needs ~178 GB of host memory in all; a one-GPU machine with 128 GiB cannot hold
# that, a 256-GiB one (the lent x2 kinds) can. The 3B fits one H200 without offload. SCALE_EAGER=1
# (--vllm.enforce_eager), SCALE_STEPS (default 4): the rest. SCALE_RUN_STEPS (default SCALE_STEPS): the steps a run
# takes of the assets' SCALE_STEPS (its first P x SCALE_RUN_STEPS prompts), so that a shorter run shares the assets
# and the card of a longer one. SCALE_PIPELINE=0 skips bench/video_pipeline.py (about 2 minutes of a lease, for a
# short run whose host has been measured).
#
# Resumable: the assets (model ~35 s to build and write, 64 clips ~4 min on 16 cores, prompts) are reused from
# OUT/assets; a run whose run.json says complete is skipped, one cut off is run again from the start (a checkpoint
# would not fit the disk), and the report reads whatever steps each run logged. Measured on an H100 (2026-12-06,
# 3B, sdpa): start-up to the first rollout 3.8 min; the first step of 16 prompts x 8 took more than 10 minutes
# (generation 123 s, make_experience 220 s, ppo_train not finished after 219 s), so a run of 4 such steps does not
# fit a 30-minute lease: there, SCALE_PROMPTS=16 SCALE_SAMPLES=2 (the paper's 16 distinct clips a step, 32 rollouts:
# 133 s a step on an H100 after that day's fixes, 15 minutes from rarft-train to its exit; 94 s and 11 minutes with
# the prefetch of the next step's clips, on another H100).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/gpu_scale.sh OUT [natural] [n200]}
shift
runs=("$@")
[[ ${#runs[@]} -gt 0 ]] || runs=(natural n200)
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
size=${SCALE_SIZE:-3b}
steps=${SCALE_STEPS:-4}
export VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}  # vLLM 0.26's sampler imports flashinfer
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}  # DeepSpeed's JIT build cannot parse Hopper's "9.0a"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
scale() { "$python" "$repo/scripts/gpu_scale.py" "$@"; }

gpus=${SCALE_GPUS:-1}
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}  # NVLink multicast off on a shared host unless the caller turns it on
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null || echo unknown)
case "$gpu_name" in *H200*) device=H200 ;; *H100*) device=H100 ;; *A100*) device=A100 ;; *) device=H100 ;; esac
prompts=${SCALE_PROMPTS:-16}
samples=${SCALE_SAMPLES:-8}  # rollouts a prompt (the recipe's G = 8)
clips=$((prompts * steps))
run_steps=${SCALE_RUN_STEPS:-$steps}
((run_steps >= 1 && run_steps <= steps)) || { echo "SCALE_RUN_STEPS must be 1 to SCALE_STEPS ($steps)" >&2; exit 2; }
attn=${SCALE_ATTN:-}
if [[ -z $attn ]]; then
    attn=sdpa
    # flash_attention_2 where rarft-train's check lets it run (flash-attn's CUDA extension installed)
    "$python" -c "import sys; from rarft_plugin.launch.checks import attention_problem as a; sys.exit(bool(a([])))" \
        2> /dev/null && attn=flash_attention_2
fi
started=$(date +%s)
scale assets --out "$out/assets" --size "$size" --charades $((clips - clips / 4)) --activitynet $((clips / 4))
echo "assets ready after $(($(date +%s) - started)) s"
# rarft's video preparation on this host's cores, on the run's own clips (3 Charades-like to 1 ActivityNet-like),
# torch on one thread as in vLLM's Ray actor: decord serialised in the engine's threads (before 2026-12-06) vs PyAV
# in them (the executor's) vs the executor's DecodePool (4 processes; the shipped default is 0, no pool) -- the
# before/after of taking decoding off the critical path, where a 2-core development machine cannot show it
if [[ ${SCALE_PIPELINE:-1} != 0 ]]; then
    [[ -f $out/video_pipeline.txt ]] || "$python" "$repo/bench/video_pipeline.py" --paper mixed \
        --clips "$out/assets/videos" --prompts $((clips < 16 ? clips : 16)) --processes 4 --torch-threads 1 \
        > "$out/video_pipeline.txt" 2>&1 || true
    tail -8 "$out/video_pipeline.txt"
fi

max_prompt=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['max_prompt_tokens'])" \
    "$out/assets/lengths.json")
for run in "${runs[@]}"; do
    [[ $run == assets ]] && continue
    processes=${SCALE_DECODE_PROCESSES:-0}
    case "$run" in
        natural) new=$((4608 - max_prompt)) ;;
        n200) new=200 ;;
        pool) new=200 processes=${SCALE_POOL_PROCESSES:-4} ;;
        *) echo "unknown run $run (natural, n200, pool, assets)" >&2; exit 2 ;;
    esac
    dir="$out/$run"
    [[ $gpus == 1 ]] || dir="$out/${run}_${gpus}gpu"
    if [[ -f $dir/run.json ]] && grep -q '"complete": true' "$dir/run.json"; then
        echo "$(basename "$dir"): complete, skipped"
        continue
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    begin=$(date +%s)
    set +e  # train.log, memory.csv (every second) and run.json in $dir
    scale measure --dir "$dir" --field "size=$size" --field "device=$device" --field "gpu_name=$gpu_name" \
        --field "max_new_tokens=$new" --field "decode_processes=$processes" --field "gpus=$gpus" --field layout=hybrid \
        --field "attention=$attn" --field "prompts_per_step=$prompts" --field "samples_per_prompt=$samples" \
        --field "prefetch=${RARFT_PREFETCH:-1}" --field "steps_asked=$run_steps" \
        -- env RARFT_MODEL="$out/assets/model_$size" RARFT_DATA="$out/assets/train.jsonl" RARFT_OUTPUT="$dir/ckpt" \
        RARFT_NUM_GPUS="$gpus" RARFT_DECODE_PROCESSES="$processes" PYTHON="$python" "$repo/recipes/time_r1.sh" \
        --data.max_samples $((prompts * run_steps)) --train.num_episodes 1 --rollout.max_new_tokens "$new" \
        --rollout.batch_size "$prompts" --rollout.n_samples_per_prompt "$samples" \
        --train.batch_size $((samples * prompts)) \
        --ckpt.save_steps 1000 --ds.attn_implementation "$attn" \
        ${SCALE_EAGER:+--vllm.enforce_eager}
    code=$?
    set -e
    rm -rf "$dir/ckpt"  # the final weights: not needed, and 7-17 GB of disk
    echo "$(basename "$dir"): exit $code after $(($(date +%s) - begin)) s"
done
reports=()
for run in natural n200 pool; do [[ -f $out/$run/train.log ]] && reports+=(--run "$out/$run"); done
[[ ${#reports[@]} -gt 0 ]] || exit 0  # assets only
scale report "${reports[@]}" --assets "$out/assets" --out "$out"
