"""OpenRLHF reward entry for RA-RFT (rarft-train's video runs score in the executor instead: `openrlhf_agent`).

    --reward.remote_url "$(python -m rarft_plugin.paths reward)"

OpenRLHF loads this file by path and calls `reward_func(queries, prompts, labels)` once per
rollout (one sample per call) from worker threads of each vLLM engine actor. `queries` are the
decoded prompt+response strings with special tokens; `labels` are the dataset's label strings
(JSON, see `rarft_plugin.schema`). The reward options come from the worker's `RARFT_*` variables
(`rarft_plugin.reward_options.RewardOptions.from_env`), read once per process;
`python -m rarft_plugin.reward_options` lists the variables and the reward table. The response is
read out of each query with the chat markers of the model family named by `RARFT_MODEL_FAMILY`
(`rarft_plugin.models.family_from_env`; unset: the default family, Qwen2.5-VL), which `rarft-train`
sets from the policy's config.json and a hand-written command sets itself. Returns the total as
`rewards`, the task score in {0, 1} as `scores` (what `--algo.dynamic_filtering_enable` reads), and
each reward of the table and each rollout log of `rarft_plugin.rollout_logs` in `extra_logs`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import torch

from rarft_plugin.models import family_from_env
from rarft_plugin.parsing import ChatMarkers, extract_response
from rarft_plugin.reward_options import RewardOptions, ScoreOptions
from rarft_plugin.rewards import REWARD_NAMES
from rarft_plugin.rollout_logs import ROLLOUT_LOG_NAMES, score_with_logs
from rarft_plugin.schema import parse_label

__all__ = ["chat_markers", "reward_func"]

_OPTIONS: ScoreOptions | None = None
_OPTIONS_LOCK = threading.Lock()


def _options() -> ScoreOptions:
    global _OPTIONS
    with _OPTIONS_LOCK:
        if _OPTIONS is None:
            _OPTIONS = RewardOptions.from_env().score_options()
        return _OPTIONS


@functools.cache
def chat_markers() -> ChatMarkers:
    """The chat markers of the family RARFT_MODEL_FAMILY names (read once per process)."""
    return family_from_env().CHAT


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[str], **kwargs: object) -> dict:
    """Rewards for decoded prompt+response `queries`: total as `rewards`, task score as `scores`, components and
    rollout logs in `extra_logs`."""
    chat = chat_markers()
    responses = [extract_response(query, prompt, chat=chat) for query, prompt in zip(queries, prompts, strict=True)]
    results = score_with_logs(responses, [parse_label(label) for label in labels], list(prompts), **_options())

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    return {
        "rewards": column([r.rewards["total"] for r in results]),
        "scores": column([r.score for r in results]),
        "extra_logs": {
            **{name: column([r.rewards[name] for r in results]) for name in REWARD_NAMES},
            **{name: column([r.logs[name] for r in results]) for name in ROLLOUT_LOG_NAMES},
        },
    }
