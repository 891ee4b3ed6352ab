"""Shared fixtures: offline hub settings and the project's data locations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_DATA = REPO / "eval" / "benchmarks"  # shipped copies of the released files (NOTICE there)
OFFICIAL_FILES = ("hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def official_data() -> Path:
    """The released evaluation annotations, as shipped in eval/benchmarks/."""
    return OFFICIAL_DATA


@pytest.fixture(scope="session")
def sbert():
    """The real packaged all-MiniLM-L6-v2 similarity (loaded once per session)."""
    from rarft_plugin.similarity import get_similarity

    return get_similarity()
