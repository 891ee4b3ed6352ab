"""OpenRLHF reward entry for RA-RFT.

    --reward.remote_url "$(python -m rarft_plugin.paths reward)"

OpenRLHF loads this file by path and calls `reward_func(queries, prompts, labels)` once per
rollout (one sample per call) from worker threads of each vLLM engine actor. `queries` are the
decoded prompt+response strings with special tokens; `labels` are the dataset's label strings
(JSON, see `rarft_plugin.schema`). Options come from the environment of the worker:

| variable               | meaning                                             | default                  |
|------------------------|-----------------------------------------------------|--------------------------|
| `RARFT_VARIANT`        | `paper` or `released` (see `rarft_plugin.rewards`)   | `paper`                  |
| `RARFT_CORRECTION`     | `similarity` (eq. 7) or `contrastive` (copy-proof)  | `similarity`             |
| `RARFT_REWARD_WEIGHTS` | e.g. `format=1,refuse_iou=1,explain=1,correction=1`  | all 1.0                  |
| `RARFT_SBERT_MODEL`    | sentence-transformers name or local path            | packaged all-MiniLM-L6-v2 |
| `RARFT_SBERT_DEVICE`   | `cpu`, `cuda`, `cuda:1`, ...                        | `cpu`                    |
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping, Sequence

import torch

from rarft_plugin.parsing import extract_response
from rarft_plugin.rewards import CORRECTIONS, REWARD_NAMES, VARIANTS, parse_weights, score_many
from rarft_plugin.similarity import get_similarity

VARIANT_ENV = "RARFT_VARIANT"
CORRECTION_ENV = "RARFT_CORRECTION"
WEIGHTS_ENV = "RARFT_REWARD_WEIGHTS"

_OPTIONS: dict[str, Any] | None = None
_OPTIONS_LOCK = threading.Lock()


def reward_options_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`score` keyword options from the RARFT_* environment variables (validated, clear errors)."""
    variant = environ.get(VARIANT_ENV, "paper").strip() or "paper"
    if variant not in VARIANTS:
        raise ValueError(f"{VARIANT_ENV}={variant!r}: expected one of {list(VARIANTS)}")
    correction = environ.get(CORRECTION_ENV, "similarity").strip() or "similarity"
    if correction not in CORRECTIONS:
        raise ValueError(f"{CORRECTION_ENV}={correction!r}: expected one of {list(CORRECTIONS)}")
    try:
        weights = parse_weights(environ.get(WEIGHTS_ENV))
    except ValueError as error:
        raise ValueError(f"{WEIGHTS_ENV}: {error}") from None
    return {"variant": variant, "correction": correction, "weights": weights, "similarity": get_similarity()}


def _options() -> dict[str, Any]:
    global _OPTIONS
    with _OPTIONS_LOCK:
        if _OPTIONS is None:
            _OPTIONS = reward_options_from_env()
        return _OPTIONS


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> dict:
    """Rewards for decoded prompt+response `queries`: total as `rewards` and `scores`, components in `extra_logs`."""
    responses = [extract_response(query, prompt) for query, prompt in zip(queries, prompts)]
    results = score_many(responses, list(labels), **_options())
    rewards = torch.tensor([r["total"] for r in results], dtype=torch.float32)
    return {
        "rewards": rewards,
        "scores": rewards.clone(),
        "extra_logs": {name: torch.tensor([r[name] for r in results], dtype=torch.float32) for name in REWARD_NAMES},
    }
