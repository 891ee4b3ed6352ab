#!/usr/bin/env bash
# RA-RFT on Qwen3-VL-8B-Instruct with the paper's setup (recipes/common.sh), adapted to the Qwen3-VL family
# (rarft_plugin.models.qwen3_vl). `qwen3_vl_8b.sh --help` explains the variables.
#
# What changes and why (docs/video.md, "Model families"): frames keep the paper's 2 FPS and its budget of at
# most 3584 video tokens a clip (the family's pixel defaults, 3584·32·32, are that many of Qwen3-VL's 32-pixel
# merged patches), but Qwen3-VL's processor writes a timestamp before every frame group, `<t seconds>` (6-8
# tokens) in its own <|vision_start|> / <|vision_end|> pair: about 9 tokens per second of video, ~640 for a
# 72-s HI-VTG Charades clip. The sequence length (RECIPE_MAX_LEN) grows from 4608 to 5120 for them: 3456 video
# tokens of a 72-s 320x240 clip + ~640 + ~260 of instruction and chat + 200 new tokens. Everything else (GRPO,
# G = 8, KL 0.04, lr 1e-6, 3 epochs, ZeRO-3, frozen vision tower) is the paper's: nothing about the family
# argues for other values, and the recipe exists to compare the same training on another base model.
# TimeLens-8B (Qwen3-VL-8B based) has no recipe: its prompt format is not documented anywhere rarft can cite.
set -euo pipefail
RECIPE=qwen3_vl_8b
RECIPE_TITLE="RA-RFT on Qwen3-VL-8B-Instruct, the paper's setup with Qwen3-VL's timestamped video prompts"
RECIPE_MODEL="Qwen3-VL-8B-Instruct (Hugging Face: Qwen/Qwen3-VL-8B-Instruct)"
RECIPE_HARDWARE="one node with 8 GPUs of 80 GB and >= 386 GB of host memory, as for the 7B recipes (a model of about their size); the videos on a disk every GPU worker reads"
RECIPE_MAX_LEN=5120
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rarft_recipe_main "$@"
