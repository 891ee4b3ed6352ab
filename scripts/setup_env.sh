#!/usr/bin/env bash
# Create ./.venv with everything rarft needs on a CPU machine (idempotent; re-run any time).
#   torch 2.14.1 + torchvision 0.29.1 (transformers' Qwen2.5-VL processors need torchvision),
#   rarft itself (editable) with its test extra, and OpenRLHF 0.11.2 without its GPU-only
#   dependencies (flash-attn / vLLM need CUDA to build) plus what its loader, dataset and
#   argument parser import.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.rarft-setup-$(cat pyproject.toml scripts/setup_env.sh scripts/requirements-openrlhf-cpu.txt | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --disable-pip-version-check -U pip wheel setuptools
pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
pip install -q --disable-pip-version-check -e ".[test]"
pip install -q --disable-pip-version-check --no-deps openrlhf==0.11.2
DS_BUILD_OPS=0 pip install -q --disable-pip-version-check -r scripts/requirements-openrlhf-cpu.txt
rm -f "$VENV"/.rarft-setup-*
touch "$stamp"
echo "rarft: environment ready in $VENV"
