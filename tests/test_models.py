"""Model families (`rarft_plugin.models`): explicit registration, the lookups, and the family classes."""

import json
import pkgutil
from types import SimpleNamespace

import pytest
import torch

from rarft_plugin import models
from rarft_plugin.errors import DataError
from rarft_plugin.models import (
    FAMILY_MODULES,
    FamilyRegistry,
    ModelFamily,
    UnknownModelFamily,
    VllmVideoRequest,
    default_family,
    families,
    family_env,
    family_for_model_type,
    family_from_env,
    family_named,
    family_of_model,
    family_of_processor,
)
from rarft_plugin.models.qwen2_5_vl import Qwen2_5_VL
from rarft_plugin.models.qwen_vl import QwenVL

QWEN2_5_VL = family_named("qwen2_5_vl")


def test_the_registered_families_are_those_of_the_listed_modules_and_helpers_are_not_families():
    modules = {info.name for info in pkgutil.iter_modules(models.__path__)}
    helpers = modules - set(FAMILY_MODULES)
    assert "qwen_vl" in helpers  # a helper module beside the families breaks neither the lookups nor the hook
    assert {type(family).__module__.rsplit(".", 1)[1] for family in families()} == set(FAMILY_MODULES)
    for family in families():
        assert isinstance(family, ModelFamily) and family_named(family.NAME) is family
    assert models.use_reference_video_positions() in (True, False)


def test_a_family_class_can_extend_another_and_override_only_what_differs():
    registry = FamilyRegistry()

    @registry.register
    class LongerClips(Qwen2_5_VL):
        NAME, MODEL_TYPES, PROCESSOR_CLASSES = "longer_clips", ("longer_clips",), ("LongerClipsProcessor",)
        MAX_FRAMES = 1024

    (family,) = registry.families()
    assert isinstance(family, LongerClips) and family.CHAT == QWEN2_5_VL.CHAT
    assert len(family.frame_indices(10**5, 30.0, 0, 10**5 - 1)) == 1024
    assert len(QWEN2_5_VL.frame_indices(10**5, 30.0, 0, 10**5 - 1)) == 768


def _family(name, model_types, processors):
    return type(name, (Qwen2_5_VL,), {"NAME": name, "MODEL_TYPES": model_types, "PROCESSOR_CLASSES": processors})


@pytest.mark.parametrize(
    "second, message",
    [
        (_family("a", ("b",), ("B",)), "NAME a is already registered by tests.test_models.a"),
        (_family("b", ("a",), ("B",)), "MODEL_TYPES a is already registered"),
        (_family("b", ("b",), ("A",)), "PROCESSOR_CLASSES A is already registered"),
    ],
)
def test_registering_a_name_model_type_or_processor_twice_is_refused(second, message):
    registry = FamilyRegistry()
    first = _family("a", ("a",), ("A",))
    first.__module__ = "tests.test_models"
    registry.register(first)
    with pytest.raises(TypeError, match=message):
        registry.register(second)
    assert [family.NAME for family in registry.families()] == ["a"]


def test_a_class_lacking_a_name_or_method_is_refused_naming_what_it_lacks():
    class Incomplete(QwenVL):  # no NAME, model types, metadata, vLLM request, positions
        pass

    with pytest.raises(TypeError, match="lacks IMAGE_FACTOR, .*NAME, .*VLLM_PATH, probe_positions, .*video_metadata"):
        FamilyRegistry().register(Incomplete)
    with pytest.raises(TypeError, match="a subclass of rarft_plugin.models.ModelFamily"):
        FamilyRegistry().register(SimpleNamespace)


@pytest.mark.parametrize("model_type, found", [("qwen2_5_vl", QWEN2_5_VL), ("qwen2", None), ("llava", None)])
def test_family_for_model_type(model_type, found):
    if found is not None:
        assert family_for_model_type(model_type) is found
        return
    with pytest.raises(
        UnknownModelFamily,
        match=rf"model_type '{model_type}' has no rarft model family \(supported: qwen2_5_vl \(model_type qwen2_5_vl\)",
    ):
        family_for_model_type(model_type)


def test_the_default_family_is_qwen2_5_vl():
    assert default_family() is QWEN2_5_VL


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
        assert family_of_model(tmp_path) is QWEN2_5_VL
        assert family_env(tmp_path) == {"RARFT_MODEL_FAMILY": "qwen2_5_vl"}
        return
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as caught:
        family_of_model(tmp_path)
    assert str(tmp_path / "config.json") in str(caught.value)
    assert family_env(tmp_path) == {}  # nothing exported; the pre-flight names the problem


def test_family_of_processor_by_class_or_base_class():
    class Qwen2_5_VLProcessor:  # named as transformers names it
        pass

    class Derived(Qwen2_5_VLProcessor):
        pass

    assert family_of_processor(Qwen2_5_VLProcessor()) is family_of_processor(Derived()) is QWEN2_5_VL
    with pytest.raises(UnknownModelFamily, match="processor object has no rarft model family"):
        family_of_processor(object())


@pytest.mark.parametrize(
    "environ, found",
    [
        ({}, "qwen2_5_vl"),
        ({"RARFT_MODEL_FAMILY": ""}, "qwen2_5_vl"),
        ({"RARFT_MODEL_FAMILY": "qwen2_5_vl"}, "qwen2_5_vl"),
        ({"RARFT_MODEL_FAMILY": "llava"}, "RARFT_MODEL_FAMILY=llava: no rarft model family is named 'llava'"),
    ],
)
def test_family_from_env(environ, found):
    if found.startswith("RARFT"):
        with pytest.raises(UnknownModelFamily, match=found):
            family_from_env(environ)
        return
    assert family_from_env(environ) is family_named(found)


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


def test_padding_and_batching_keep_each_rows_positions(family, loaded_tiny, installed_positions, tmp_path):
    """Left-padded rows of two clips get the positions each gets alone (the positions rarft trains on)."""
    from rarft_plugin.prompts import build_messages
    from rarft_plugin.stand_ins import write_test_video
    from rarft_plugin.video import sample_frames

    processor, model = loaded_tiny(family.NAME)
    family.use_reference_video_positions()
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", "the bar moves"), tokenize=False, add_generation_prompt=True
    )
    rows = []
    for index, seconds in enumerate((6, 10)):
        clip = write_test_video(tmp_path / f"{index}.mp4", seconds=seconds, size=(112, 84))
        rows.append(family.process_video_prompt(processor, prompt, sample_frames(str(clip), family=family)))

    def positions(ids, tensors, attention):
        types = (ids == processor.video_token_id).long() * 2  # as the processor marks video tokens
        video = {k: v for k, v in tensors.items() if k in ("video_grid_thw", "second_per_grid_ts")}
        return model.model.get_rope_index(ids, types, attention_mask=attention, **video)[0]

    single = [positions(torch.tensor([ids]), t, torch.ones(1, len(ids), dtype=torch.long))[:, 0] for ids, t in rows]
    length = max(len(ids) for ids, _ in rows)
    batch = torch.full((2, length), processor.tokenizer.pad_token_id)
    attention = torch.zeros_like(batch)
    for row, (ids, _) in enumerate(rows):  # left padding, as generation batches
        batch[row, length - len(ids) :] = torch.tensor(ids)
        attention[row, length - len(ids) :] = 1
    merged = {
        key: torch.cat([t[key] for _, t in rows]) for key in family.TRAIN_INPUT_KEYS if key != "pixel_values_videos"
    }
    both = positions(batch, merged, attention)
    for row, (ids, _) in enumerate(rows):
        assert torch.equal(both[:, row, length - len(ids) :], single[row])
