"""Model families (`rarft_plugin.models`): the registry, and every family module against the protocol."""

import json
import pkgutil
from types import SimpleNamespace

import pytest

from rarft_plugin import models
from rarft_plugin.errors import DataError
from rarft_plugin.models import (
    ModelFamily,
    UnknownModelFamily,
    VllmVideoRequest,
    default_family,
    families,
    family_for_model_type,
    family_of_model,
    family_of_processor,
    qwen2_5_vl,
)


def test_every_module_of_the_package_is_a_family_with_every_name_of_the_protocol():
    modules = sorted(info.name for info in pkgutil.iter_modules(models.__path__))
    assert [family.__name__.rsplit(".", 1)[1] for family in families()] == modules == ["qwen2_5_vl"]
    for family in families():
        assert isinstance(family, ModelFamily)
        assert set(family.__all__) >= {"CHAT", "FPS", "NAME", "frame_indices", "vllm_video_request"}


def test_a_module_lacking_a_name_is_refused_naming_what_it_lacks(monkeypatch):
    incomplete = SimpleNamespace(**{name: getattr(qwen2_5_vl, name) for name in dir(qwen2_5_vl)})
    del incomplete.frame_size, incomplete.CHAT
    incomplete.__name__ = "rarft_plugin.models.incomplete"
    monkeypatch.setattr(models.pkgutil, "iter_modules", lambda path: [SimpleNamespace(name="incomplete")])
    monkeypatch.setattr(models.importlib, "import_module", lambda name: incomplete)
    families.cache_clear()
    try:
        with pytest.raises(TypeError, match="model family rarft_plugin.models.incomplete lacks CHAT, frame_size"):
            families()
    finally:
        families.cache_clear()


@pytest.mark.parametrize("model_type, found", [("qwen2_5_vl", qwen2_5_vl), ("qwen2", None), ("llava", None)])
def test_family_for_model_type(model_type, found):
    if found is not None:
        assert family_for_model_type(model_type) is found
        return
    with pytest.raises(
        UnknownModelFamily,
        match=f"model_type '{model_type}' has no rarft model family "
        r"\(known: qwen2_5_vl\)",
    ):
        family_for_model_type(model_type)


def test_the_default_family_is_qwen2_5_vl():
    assert default_family() is qwen2_5_vl


@pytest.mark.parametrize(
    "config, message",
    [
        ({"model_type": "qwen2_5_vl"}, None),
        ({"model_type": "llava"}, "config.json: model_type 'llava' has no rarft model family"),
        ("{broken", "config.json: cannot read the model_type (JSONDecodeError"),
        (None, "config.json: cannot read the model_type (FileNotFoundError"),
    ],
)
def test_family_of_model_reads_config_json(tmp_path, config, message):
    if config is not None:
        (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if message is None:
        assert family_of_model(tmp_path) is qwen2_5_vl
        return
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as caught:
        family_of_model(tmp_path)
    assert str(tmp_path / "config.json") in str(caught.value)


def test_family_of_processor_by_class_or_base_class():
    class Qwen2_5_VLProcessor:  # named as transformers names it
        pass

    class Derived(Qwen2_5_VLProcessor):
        pass

    assert family_of_processor(Qwen2_5_VLProcessor()) is family_of_processor(Derived()) is qwen2_5_vl
    with pytest.raises(UnknownModelFamily, match="processor object has no rarft model family"):
        family_of_processor(object())


@pytest.mark.parametrize(
    "request_, fields",
    [
        (VllmVideoRequest({"video": "frames"}), {"multi_modal_data": {"video": "frames"}}),
        (
            VllmVideoRequest({"video": "frames"}, {"fps": 2}),
            {"multi_modal_data": {"video": "frames"}, "mm_processor_kwargs": {"fps": 2}},
        ),
    ],
)
def test_vllm_request_prompt_fields(request_, fields):
    assert request_.prompt_fields() == fields


def test_the_worker_hook_runs_every_familys_position_fix(monkeypatch):
    ran = []

    def family(name, changed):
        return SimpleNamespace(use_reference_video_positions=lambda: ran.append(name) or changed)

    monkeypatch.setattr(models, "families", lambda: (family("a", True), family("b", False)))
    assert models.use_reference_video_positions() is True and ran == ["a", "b"]  # the first that changes stops none
    monkeypatch.setattr(models, "families", lambda: (family("c", False),))
    assert models.use_reference_video_positions() is False
