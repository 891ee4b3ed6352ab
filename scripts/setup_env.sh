#!/usr/bin/env bash
# Create ./.venv with everything rarft needs on a CPU machine (idempotent; re-run any time).
#   torch 2.14.1 + torchvision 0.29.1 (transformers' Qwen2.5-VL processors need torchvision),
#   rarft itself (editable) with its test extra, and OpenRLHF 0.11.2 without its GPU-only
#   dependencies (flash-attn / vLLM need CUDA to build) plus what its loader, dataset and
#   argument parser import.
# One line per stage (pip runs quietly and the whole takes minutes on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.rarft-setup-$(cat pyproject.toml scripts/setup_env.sh scripts/requirements-openrlhf-cpu.txt | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
stage() { echo "rarft setup [$1/5, ${SECONDS} s]: $2"; }
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@"; }
stage 1 "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stage 2 "pip, wheel, setuptools"
pip install -U pip wheel setuptools
stage 3 "torch 2.14.1 + torchvision 0.29.1 (the longest stage: the CPU wheels are large)"
pip install torch==2.14.1 torchvision==0.29.1
stage 4 "rarft (editable) with its test extra"
pip install -e ".[test]"
stage 5 "what OpenRLHF 0.11.2 imports on a CPU (scripts/requirements-openrlhf-cpu.txt), then openrlhf itself"
DS_BUILD_OPS=0 pip install -r scripts/requirements-openrlhf-cpu.txt
# Last, and without its dependencies: its GPU-only ones (flash-attn, vllm, bitsandbytes, ...) stay
# out on purpose. Installed before the step above, it made pip print a resolver "ERROR: ...
# openrlhf 0.11.2 requires flash-attn, which is not installed" list (pip checks the requirements of
# every installed package a later install touches); --no-deps installs skip that check.
pip install --no-deps openrlhf==0.11.2
rm -f "$VENV"/.rarft-setup-*
touch "$stamp"
echo "rarft: environment ready in $VENV (${SECONDS} s)"
