#!/usr/bin/env bash
# RA-RFT on VideoChat-R1-thinking-7B (paper Tables 1-3), with the paper's setup (recipes/common.sh). `videochat_r1_think.sh --help` explains the variables.
set -euo pipefail
RECIPE=videochat_r1_think
RECIPE_TITLE="RA-RFT on VideoChat-R1-thinking-7B (paper Tables 1-3)"
RECIPE_MODEL="VideoChat-R1-thinking 7B (Hugging Face: OpenGVLab/VideoChat-R1-thinking_7B)"
RECIPE_SIZE=7b
RECIPE_HARDWARE="one node with 8 GPUs of 80 GB (the paper: 8×A100, ZeRO-3) and >= 386 GB of host memory (estimated below): in the hybrid engine vLLM's sleep mode and DeepSpeed's offload park the 8 engines' weights (~17 GB each) and the ZeRO-3 actor states (~122 GB) in RAM while the other side works; the videos on a disk every GPU worker reads"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rarft_recipe_main "$@"
