# Shared by every recipe in this directory (sourced, not run): variables, --help, the paper's
# RA-RFT setup as rarft-train flags, and the launch. A recipe sets
#   RECIPE        its name (runs/<name>; for a base model, its key in rarft_plugin.prompts.TEMPLATE_FOR_MODEL)
#   RECIPE_TITLE  one line for --help
#   RECIPE_MODEL  what RARFT_MODEL must hold
#   RECIPE_HARDWARE  what it needs
# and optionally RECIPE_SIZE (the base model's published Qwen2.5-VL size, 7b or 3b, for the memory estimate of
# --help; without it --help says there is none), RECIPE_DEFAULT_GPUS, RECIPE_MAX_LEN (--data.max_len for the
# model family's prompts; default 4608, Qwen2.5-VL's) and RECIPE_EXTRA_ARGS (flags after the paper's; the later
# value wins), then calls `rarft_recipe_main "$@"`.
#
# Placement (rarft_placement_args): RARFT_NUM_GPUS GPUs of one node. By default (RARFT_VLLM_GPUS=0) OpenRLHF's
# hybrid engine: the actor, the reference and RARFT_NUM_GPUS / RARFT_VLLM_TP vLLM engines share every GPU; there the
# flags that the memory estimate (python -m rarft_plugin.launch.memory --fit) says the GPUs need are added after
# the recipe's, the cheapest that fits: --ref.offload (the reference's weights on the host), else --ds.adam_offload
# (the actor's fp32 states on the host), else both (a 3B on one GPU of 80 GB: the first; a 7B on one H200 or on two
# GPUs of 80 GB: the second; a 7B on one of 80 GB: both). The GPU's size: RARFT_GPU_MEMORY (GB), else nvidia-smi's, else 141 (an H200).
# RARFT_VLLM_GPUS=V > 0: vLLM engines alone on V GPUs, the actor and the reference on the others (no estimate).
#
# The project's Python: $PYTHON when set, else the checkout's .venv (what `make setup` creates), so a
# recipe runs without activating anything; else `python` on PATH.
RARFT_CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$RARFT_CHECKOUT/.venv/bin/python" ]]; then
        PYTHON="$RARFT_CHECKOUT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi
#
# Sources of the settings: the paper (§4.3 "Implementation Details"), the authors' released training
# script (TRL GRPO fork of Time-R1), docs/video.md ("Launcher
# contract") for what videos need from OpenRLHF 0.11.

rarft_usage() {
    local name baseline="" reward_options
    name="$(basename "$0")"
    # The reward variables and the reward table come from the package, so that they match the code.
    reward_options="$("$PYTHON" -m rarft_plugin.reward_options 2>/dev/null)" \
        || reward_options="  (not shown: $PYTHON cannot import rarft_plugin; set PYTHON)"
    if [[ -n "${RECIPE_BASELINE:-}" ]]; then
        baseline="

Evaluation: the untrained base model with its own prompt (rarft_plugin.prompts.TEMPLATE_FOR_MODEL),
  rarft-eval infer --model \$RARFT_MODEL --data EVAL.json --video-root VIDEOS --template ${RECIPE_BASELINE} --out base.jsonl
and the trained one with the RA-RFT prompt it learned,
  rarft-eval infer --model \$RARFT_OUTPUT --data EVAL.json --video-root VIDEOS --template ra_rft --out rarft.jsonl"
    fi
    cat <<EOF
${name}: ${RECIPE_TITLE}

Usage: RARFT_MODEL=DIR RARFT_DATA=TRAIN.jsonl recipes/${name} [more rarft-train / OpenRLHF 0.11 flags]

Required:
  RARFT_MODEL           local directory of ${RECIPE_MODEL}
  RARFT_DATA            training prompts (JSONL) written by
                          rarft-prep to-openrlhf hi_vtg_train.json TRAIN.jsonl --video-root VIDEOS \\
                            --template ra_rft --ratio 1:3
                        (the paper trains at relevant:irrelevant 1:3; --template ra_rft_released with
                        RARFT_VARIANT=released). Several files: a comma-separated list.
Optional:
  RARFT_OUTPUT          checkpoints, final Hugging Face weights, TensorBoard logs
                        (default: runs/${RECIPE}); a rerun resumes from its last checkpoint
  RARFT_NUM_GPUS        GPUs on this node (default: ${RECIPE_DEFAULT_GPUS:-8}); the recipe adds what they need
                        to fit by the estimate (see Memory)
  RARFT_VLLM_GPUS       GPUs that run only vLLM engines (default 0: OpenRLHF's hybrid engine, where the actor,
                        the reference and the engines share every GPU, each side asleep while the other
                        works); V > 0: engines on V GPUs, actor and reference share the other ones
                        (--train.colocate_actor_ref) and vLLM receives the weights over NCCL
  RARFT_VLLM_TP         GPUs per vLLM engine (--vllm.tensor_parallel_size; default 1): the engines are the
                        vLLM GPUs / RARFT_VLLM_TP
  RARFT_GPU_MEMORY      GB per GPU for that choice (default: nvidia-smi's, else 141)
  RARFT_PRESET          paper (default): the paper's setup; released: the authors' released training
                        script setting by setting (docs/train.md), on data built with
                          rarft-prep to-openrlhf hi_vtg_train.json TRAIN.jsonl --video-root VIDEOS \\
                            --template ra_rft_released --pairing released --epochs 3
  RARFT_DECODE_PROCESSES
                        worker processes decoding clips, per vLLM engine (default 0: the engine's own
                        process decodes; docs/video.md)
  RARFT_PREFETCH=0      do not prepare the next step's clips while a step trains (default: on)
  RARFT_DRY_RUN=1       check data, model and flags, print the final OpenRLHF command, start nothing
  PYTHON                interpreter with rarft and the training stack (default: this checkout's
                        .venv/bin/python when it exists, else python)
Reward options, passed to every rollout worker (python -m rarft_plugin.reward_options):
${reward_options}

Hardware: $(fold -s -w 98 <<<"${RECIPE_HARDWARE}" | sed '2,$s/^/  /')

$(rarft_memory_help)

Extra arguments go to rarft-train after the recipe's flags, so a later value wins
(e.g. --ckpt.save_steps 100); \`python -m rarft_plugin.train --help\` lists rarft-train's own.
Before Ray starts, rarft-train checks every dataset line (label, video file, prompt template), the
model directory, the SentenceBERT model and the placement on the GPUs, and lists all problems at once.${baseline}
EOF
}

# --help's Memory section: the estimate for the recipe's GPUs and for one GPU of 141 and 80 GB, with the flags
# one GPU adds (the preset's flags included), or why there is none.
rarft_memory_help() {  # the estimate models the hybrid engine only
    local RARFT_ARGS=() RARFT_MODEL=MODEL RARFT_DATA=DATA RARFT_OUTPUT=OUT RARFT_VLLM_GPUS=0 RARFT_VLLM_TP=1
    if [[ -z "${RECIPE_SIZE:-}" ]]; then
        echo "Memory: no estimate for this recipe's model (python -m rarft_plugin.launch.memory covers the published"
        echo "Qwen2.5-VL architectures only); the recipe adds nothing for memory on its own: add --ds.adam_offload"
        echo "(and --ref.offload) yourself where the GPUs do not hold the model's states (e.g. RARFT_NUM_GPUS=1)."
        return
    fi
    echo "Memory, ESTIMATED from the published ${RECIPE_SIZE} Qwen2.5-VL architecture and this recipe's flags"
    echo "(python -m rarft_plugin.launch.memory), then what GPU runs measured (docs/gpu.md, \"Paper scale\"):"
    rarft_paper_args "${RECIPE_DEFAULT_GPUS:-8}"
    rarft_preset_args
    RARFT_ARGS+=(${RECIPE_EXTRA_ARGS[@]+"${RECIPE_EXTRA_ARGS[@]}"})
    "$PYTHON" -m rarft_plugin.launch.memory --size "$RECIPE_SIZE" --recipe -- "${RARFT_ARGS[@]}" 2>&1 \
        || echo "  (not shown: $PYTHON cannot import rarft_plugin; set PYTHON)"
}

# The flags the GPUs of this machine need by the estimate (the hybrid engine's), for the model in RARFT_MODEL
# (nothing when it cannot tell: a model directory whose config is not a Qwen2.5-VL one, e.g. Qwen3-VL).
rarft_fit_args() {
    local memory="${RARFT_GPU_MEMORY:-}"
    if [[ -z "$memory" ]]; then
        memory="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 2>/dev/null \
            | awk '{printf "%.0f", $1 * 1.048576 / 1000}')" || memory=""
    fi
    "$PYTHON" -m rarft_plugin.launch.memory --model "$RARFT_MODEL" --gpu-memory "${memory:-141}" --fit -- "$@" \
        2>/dev/null || true
}

rarft_require() {  # NAME: fail with a pointer to --help when the variable is empty
    if [[ -z "${!1:-}" ]]; then
        echo "$(basename "$0"): $1 is not set: $2 (see $(basename "$0") --help)" >&2
        exit 2
    fi
}

rarft_fail() {  # MESSAGE: one line on stderr, exit 2
    echo "$(basename "$0"): $1" >&2
    exit 2
}

# The placement on GPUS GPUs of one node (appended to RARFT_ARGS): see the top of this file. rarft-train's pre-flight
# checks the result against OpenRLHF's rules (rarft_plugin.launch.checks.placement_problems).
rarft_placement_args() {
    local gpus="$1" vllm="${RARFT_VLLM_GPUS:-0}" tp="${RARFT_VLLM_TP:-1}" name
    for name in gpus vllm tp; do
        [[ "${!name}" =~ ^(0|[1-9][0-9]*)$ ]] || rarft_fail "RARFT_NUM_GPUS, RARFT_VLLM_GPUS and RARFT_VLLM_TP take whole numbers, got '${!name}'"
    done
    (( gpus > 0 && tp > 0 )) || rarft_fail "RARFT_NUM_GPUS and RARFT_VLLM_TP must be at least 1"
    if (( vllm == 0 )); then
        # Paper: 8×A100, ZeRO-3; OpenRLHF's hybrid engine: every GPU holds an actor rank, a reference rank and one
        # engine's share, each side asleep while the other works.
        (( gpus % tp == 0 )) || rarft_fail "RARFT_VLLM_TP=$tp must divide RARFT_NUM_GPUS=$gpus (the hybrid engine spreads the engines over every GPU)"
        RARFT_ARGS+=(
            --actor.num_nodes 1 --actor.num_gpus_per_node "$gpus"
            --ref.num_nodes 1 --ref.num_gpus_per_node "$gpus"
            --vllm.num_engines $((gpus / tp)) --vllm.tensor_parallel_size "$tp"
            --train.colocate_all --vllm.enable_sleep --ds.enable_sleep
        )
    else
        (( vllm < gpus )) || rarft_fail "RARFT_VLLM_GPUS=$vllm leaves none of RARFT_NUM_GPUS=$gpus for the actor and the reference"
        (( vllm % tp == 0 )) || rarft_fail "RARFT_VLLM_TP=$tp must divide RARFT_VLLM_GPUS=$vllm"
        RARFT_ARGS+=(
            --actor.num_nodes 1 --actor.num_gpus_per_node $((gpus - vllm))
            --ref.num_nodes 1 --ref.num_gpus_per_node $((gpus - vllm))
            --vllm.num_engines $((vllm / tp)) --vllm.tensor_parallel_size "$tp"
            --train.colocate_actor_ref
        )
    fi
}

# The paper's RA-RFT setup as rarft-train flags (fills the array RARFT_ARGS).
rarft_paper_args() {
    local gpus="$1"
    RARFT_ARGS=(
        --actor.model_name_or_path "$RARFT_MODEL"
        --data.prompt_dataset "$RARFT_DATA"
    )
    rarft_placement_args "$gpus"
    RARFT_ARGS+=(
        --vllm.gpu_memory_utilization 0.5   # room for the reference model and SentenceBERT beside vLLM
        --ds.zero_stage 3                   # paper §4.3
        --ds.param_dtype bf16               # released script: bf16
        --ds.attn_implementation flash_attention_2   # released script: flash-attn
        --actor.gradient_checkpointing_enable        # released script; a 2.8M-pixel clip is ~3.6k tokens

        # GRPO: group-normalised advantages over G samples per prompt (paper §3.1, eq. 1).
        --algo.advantage.estimator group_norm
        --rollout.n_samples_per_prompt 8    # released script: G = 8
        --rollout.temperature 1.0           # released script
        --rollout.top_p 1.0
        --rollout.max_new_tokens 200        # released script: max 200 new tokens
        --data.max_len "${RECIPE_MAX_LEN:-4608}"   # docs/video.md: ≤ 3584 video tokens + ~300 text + 200 new

        # Batch: one update per rollout batch (TRL's GRPO default of one iteration per generation); the
        # prompts per step and the epochs depend on the preset (rarft_preset_args).
        --rollout.micro_batch_size 1 --train.micro_batch_size 1   # one video sequence per GPU pass
        --train.max_epochs 1                # OpenRLHF's max_epochs is PPO passes per rollout batch

        # KL to the reference policy (paper eq. 2). The released code kept TRL's default beta, 0.04 in the
        # TRL versions of its time (0.0 in current TRL), on the k3 estimator as a loss term, like TRL.
        --algo.kl.init_coef 0.04 --algo.kl.use_loss --algo.kl.estimator k3

        # Policy loss: PPO clip ε = 0.2 (released script); the averaging depends on the preset.
        --actor.eps_clip 0.2

        # Optimiser: TRL / transformers defaults, which the released script keeps: AdamW lr 1e-6,
        # betas (0.9, 0.999), no weight decay, linear decay without warm-up, gradient clip 1.0.
        --actor.adam.lr 1e-6 --actor.adam.betas 0.9 0.999 --actor.adam.weight_decay 0
        --actor.lr_scheduler linear --actor.lr_warmup_ratio 0 --actor.max_norm 1.0

        # Vision: the released script freezes the vision tower but trains its merger. OpenRLHF 0.11 can
        # only freeze every non-language parameter (merger included) or none; freezing keeps the ViT
        # blocks frozen as released and leaves the merger frozen too (docs/train.md).
        --actor.freeze_visual_encoder

        # 2 FPS and the 3584·28·28 (~2.8M) pixel budget (paper §4.3) are the Qwen2.5-VL family's defaults
        # (rarft_plugin.models.qwen2_5_vl), which the video executor uses; they are not OpenRLHF flags. Other
        # families keep 2 FPS and the budget of 3584 video tokens (rarft_plugin.models).

        # Output: final Hugging Face weights in RARFT_OUTPUT (the paper evaluates the final checkpoint);
        # DeepSpeed checkpoints every 50 steps so that a rerun resumes.
        --ckpt.output_dir "$RARFT_OUTPUT"
        --ckpt.path "$RARFT_OUTPUT/checkpoints" --ckpt.save_steps 50 --ckpt.max_num 2 --ckpt.load_enable
        --ckpt.save_hf
        --logger.logging_steps 1 --logger.tensorboard_dir "$RARFT_OUTPUT/tensorboard"
    )
}

# The settings where the two presets differ (docs/train.md, "The two presets"), appended to RARFT_ARGS.
# RARFT_PRESET=paper (default): the paper's reading. RARFT_PRESET=released: the authors' released
# training script (train_rarft.sh, main_rarft.py), setting by setting.
rarft_preset_args() {
    case "${RARFT_PRESET:-paper}" in
        paper)
            RARFT_ARGS+=(
                --rollout.batch_size 16 --train.batch_size 128   # 16 prompts a step (paper: batch size 16) × 8
                --train.num_episodes 3                            # 3 epochs over the 1:3 prompts (paper §4.3)
                --actor.loss_agg_mode seq-mean-token-mean         # GRPO's objective: mean per response, then group
            )
            ;;
        released)
            RARFT_ARGS+=(
                --rarft.variant released                          # the released reward code (main_rarft.py)
                --rollout.batch_size 8 --train.batch_size 64      # train_rarft.sh: 8 GPUs × 1 prompt, × 8 samples
                --train.num_episodes 1                            # one pass over the 3 epochs --pairing released wrote
                --actor.loss_agg_mode token-mean                  # the released trainer (:742): mean over tokens
            )
            rarft_require_released_pairing
            ;;
        *)
            echo "$(basename "$0"): RARFT_PRESET must be paper or released, got '${RARFT_PRESET}'" >&2
            exit 2
            ;;
    esac
}

rarft_require_released_pairing() {  # the released preset trains on rows of `to-openrlhf --pairing released`
    local first="${RARFT_DATA%%,*}" line="" pattern='"id": *"[^"]*@e[0-9]+"'
    first="${first%%@*}"
    [[ -f "$first" ]] && { IFS= read -r line <"$first" || true; }
    if [[ -f "$first" && ! "$line" =~ $pattern ]]; then
        echo "$(basename "$0"): RARFT_PRESET=released trains on one relevant and one drawn irrelevant query per" \
            "item and epoch: build $first with rarft-prep to-openrlhf ... --template ra_rft_released" \
            "--pairing released --epochs 3" >&2
        exit 2
    fi
}

rarft_recipe_main() {
    local arg
    for arg in "$@"; do
        if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
            RECIPE_BASELINE="$("$PYTHON" -c "from rarft_plugin.prompts import TEMPLATE_FOR_MODEL as t; print(t.get('$RECIPE', ''))" 2>/dev/null || true)"
            rarft_usage
            exit 0
        fi
    done
    rarft_require RARFT_MODEL "the local directory of ${RECIPE_MODEL}"
    rarft_require RARFT_DATA "the training JSONL from rarft-prep to-openrlhf"
    RARFT_OUTPUT="${RARFT_OUTPUT:-$PWD/runs/$RECIPE}"
    local gpus="${RARFT_NUM_GPUS:-${RECIPE_DEFAULT_GPUS:-8}}" fit=()
    rarft_paper_args "$gpus"
    rarft_preset_args
    RARFT_ARGS+=(${RECIPE_EXTRA_ARGS[@]+"${RECIPE_EXTRA_ARGS[@]}"} "$@")
    if [[ "${RARFT_VLLM_GPUS:-0}" == 0 ]]; then  # the estimate models the hybrid engine only
        mapfile -t fit < <(rarft_fit_args "${RARFT_ARGS[@]}")
        if [[ ${#fit[@]} -gt 0 && -n "${fit[0]}" ]]; then
            local what="$gpus GPUs"
            [[ "$gpus" == 1 ]] && what="one GPU"
            echo "$(basename "$0"): $what: adding ${fit[*]} (estimated: python -m rarft_plugin.launch.memory)" >&2
            RARFT_ARGS+=("${fit[@]}")
        fi
    fi
    exec "$PYTHON" -m rarft_plugin.train "${RARFT_ARGS[@]}"
}
