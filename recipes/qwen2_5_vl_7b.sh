#!/usr/bin/env bash
# RA-RFT on Qwen2.5-VL-7B-Instruct, trained from the general model (paper Table 12), with the paper's setup (recipes/common.sh). `qwen2_5_vl_7b.sh --help` explains the variables.
set -euo pipefail
RECIPE=qwen2_5_vl_7b
RECIPE_TITLE="RA-RFT on Qwen2.5-VL-7B-Instruct, trained from the general model (paper Table 12)"
RECIPE_MODEL="Qwen2.5-VL-7B-Instruct (Hugging Face: Qwen/Qwen2.5-VL-7B-Instruct)"
RECIPE_SIZE=7b
RECIPE_HARDWARE="one node with 8 GPUs of 80 GB (the paper: 8×A100, ZeRO-3) and >= 386 GB of host memory (estimated below): in the hybrid engine vLLM's sleep mode and DeepSpeed's offload park the 8 engines' weights (~17 GB each) and the ZeRO-3 actor states (~122 GB) in RAM while the other side works; the videos on a disk every GPU worker reads"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rarft_recipe_main "$@"
