#!/usr/bin/env bash
# RA-RFT on several GPUs of one host (docs/gpu.md, "Several GPUs"): every layout of the recipes that fits the machine,
# run with the tiny model, then the paper-scale run at 1, 2, 4 and 8 GPUs with the same global batch; one table,
# OUT/multi.md, of each run's result, step time per phase, step time against one GPU, largest vllm_kl and memory of
# the fullest GPU per phase.
#
#   bench/gpu_multi.sh OUT [STAGE ...]      STAGE: layouts, scale, report (default: all three, in that order)
#
# layouts  scripts/gpu_smoke.sh (tiny Qwen2.5-VL, generated clips of 8 HI-Charades items, recipes/single_gpu_smoke.sh:
#          2 steps of 4 prompts x 4 samples, a checkpoint each step) first on 1 GPU in the recipes' hybrid layout, the
#          baseline of the step-time ratios, then on all the GPUs in every layout that fits them (scripts/gpu_multi.py
#          layouts: hybrid, hybrid_tp2, separate, separate_tp2), with --algo.advantage.is_correction_level token so that
#          every step logs vllm_kl; each run in OUT/layouts/<layout>_<N>gpu (train.log, memory.csv, run.json; the
#          tiny assets are built once, in OUT/layouts/assets).
# scale    bench/gpu_scale.sh's n200 run (a random Qwen2.5-VL 3B, 64 paper-size clips, recipes/time_r1.sh's own settings:
#          16 prompts x 8 samples a step, --train.batch_size 128, 4 steps) with SCALE_GPUS = 1, 2, 4, 8 (those the
#          machine has; MULTI_SCALE_GPUS="1 2" chooses): OUT/scale/n200, n200_2gpu, ... The global batch is the
#          recipe's on every count (DeepSpeed's accumulation steps shrink as the GPUs grow).
# report   OUT/multi.md and OUT/multi.json (scripts/gpu_multi.py report) from every run folder there is.
#
# Resumable across calls of <= 10 minutes: a run whose run.json says complete is skipped, one cut off runs again from
# its start, the assets are reused (the tiny ones take ~1 min, the 3B's ~4-5: bench/gpu_scale.sh). MULTI_GPUS: the
# GPUs to use (default: every GPU nvidia-smi lists). NCCL_NVLS_ENABLE stays 0 unless set (NVLink multicast off on a
# shared host). PYTHON: the interpreter with the training stack (default python3).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/gpu_multi.sh OUT [layouts] [scale] [report]}
shift
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(layouts scale report)
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
gpus=${MULTI_GPUS:-$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)}
if ! [[ $gpus =~ ^[1-9][0-9]*$ ]]; then
    echo "bench/gpu_multi.sh: no GPU listed by nvidia-smi (MULTI_GPUS sets how many to use)" >&2
    exit 2
fi
multi() { "$python" "$repo/scripts/gpu_multi.py" "$@"; }

run_layouts() {
    local lines=() line name vars dir n code begin
    mapfile -t lines < <(multi layouts --gpus 1)  # the baseline: the hybrid engine on one GPU
    [[ $gpus == 1 ]] || mapfile -t -O "${#lines[@]}" lines < <(multi layouts --gpus "$gpus")
    mkdir -p "$out/layouts/assets"
    for line in "${lines[@]}"; do
        read -r name vars <<<"$line"
        n=${vars#RARFT_NUM_GPUS=}
        n=${n%% *}
        dir="$out/layouts/${name}_${n}gpu"
        if [[ -f $dir/run.json ]] && grep -q '"complete": true' "$dir/run.json"; then
            echo "$(basename "$dir"): complete, skipped"
            continue
        fi
        rm -rf "$dir" && mkdir -p "$dir"
        ln -s ../assets "$dir/assets"
        begin=$(date +%s)
        set +e  # scripts/gpu_smoke.sh writes train.log itself; measure adds memory.csv and run.json
        "$python" "$repo/scripts/gpu_scale.py" measure --dir "$dir" --log "$dir/measure.log" --field size=tiny \
            --field "layout=$name" --field "gpus=$n" --field max_new_tokens=64 \
            -- env $vars SMOKE_INFER=0 PYTHON="$python" bash "$repo/scripts/gpu_smoke.sh" "$dir" \
            --algo.advantage.is_correction_level token
        code=$?
        set -e
        echo "$(basename "$dir"): exit $code after $(($(date +%s) - begin)) s"
    done
}

run_scale() {
    local list=${MULTI_SCALE_GPUS:-} count
    if [[ -z $list ]]; then
        for count in 1 2 4 8; do (( count <= gpus )) && list+=" $count"; done
    fi
    for count in $list; do
        SCALE_GPUS=$count PYTHON=$python bash "$repo/bench/gpu_scale.sh" "$out/scale" n200 \
            || echo "bench/gpu_scale.sh with SCALE_GPUS=$count: exit $? (its runs' logs are in $out/scale)"
    done
}

run_report() {
    local runs=() dir
    for dir in "$out"/layouts/*gpu "$out/scale/n200" "$out"/scale/n200_*gpu; do
        [[ -f $dir/run.json ]] && runs+=(--run "$dir")
    done
    if [[ ${#runs[@]} -eq 0 ]]; then
        echo "bench/gpu_multi.sh: no run has finished yet: nothing to report"
        return 0
    fi
    multi report "${runs[@]}" --out "$out"
}

for stage in "${stages[@]}"; do
    case "$stage" in
        layouts) run_layouts ;;
        scale) run_scale ;;
        report) run_report ;;
        *) echo "bench/gpu_multi.sh: unknown stage $stage (layouts, scale, report)" >&2; exit 2 ;;
    esac
done
