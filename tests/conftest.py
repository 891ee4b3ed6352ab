"""Shared fixtures: offline hub settings, the project's data locations, and the model families' tiny stand-ins."""

from __future__ import annotations

import json
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


def stand_in_families() -> list[str]:
    """The registered families the rollout executor can meet (those with processor classes): each has a tiny
    stand-in (`rarft_plugin.stand_ins.TINY_MODELS`), and every family-generic test of the video path runs for it."""
    from rarft_plugin.models import families

    return [family.NAME for family in families() if family.PROCESSOR_CLASSES]


@pytest.fixture(scope="session", params=stand_in_families())
def family(request):
    """Each family with a stand-in, in turn (`tiny_model` builds its tiny model)."""
    from rarft_plugin.models import family_named

    return family_named(request.param)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """`get(family_name, **options)`: the family's tiny stand-in model directory, built once per session and
    options. Read-only: a test that changes a checkpoint copies it first."""
    from rarft_plugin.stand_ins import build_tiny_model

    built: dict[tuple[str, str], Path] = {}

    def get(name: str, **options) -> Path:
        key = (name, json.dumps(options, sort_keys=True))
        if key not in built:
            built[key] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{name}"), name, **options)
        return built[key]

    return get


@pytest.fixture(scope="session")
def tiny_model(family, tiny_models):
    """The tiny stand-in model directory of `family`."""
    return tiny_models(family.NAME)


@pytest.fixture(scope="session")
def loaded_tiny(tiny_models):
    """`get(family_name)`: (processor, model) of the family's tiny stand-in, loaded once per session (eval mode)."""
    loaded: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        if name not in loaded:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            directory = tiny_models(name)
            loaded[name] = (
                AutoProcessor.from_pretrained(directory),
                AutoModelForImageTextToText.from_pretrained(directory),
            )
        return loaded[name]

    return get


@pytest.fixture
def installed_positions():
    """transformers' own positions before and after the test, whatever the test installs."""
    from rarft_plugin.models.qwen_vl import restore_installed_video_positions

    restore_installed_video_positions()
    yield
    restore_installed_video_positions()
