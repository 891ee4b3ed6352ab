"""vLLM's own M-RoPE positions for a rarft video request equal the ones training computes, for each model family.

A random tiny model cannot tell positions apart through its log-probs (rollout and training
log-probs agree whatever the positions), so this test reads the positions themselves: the installed
vLLM's input processor turns the executor's request into what its engine runs (expanded prompt,
processor outputs; for Qwen2.5-VL `second_per_grid_ts`, for Qwen3-VL the timestamped frame groups),
and vLLM's model class computes the M-RoPE positions from that as its GPU runner does; the model computes
training's from the executor's tensors, with the positions rarft installs in every training worker
(`use_reference_video_positions` of the family: for Qwen2.5-VL the reference, since transformers 5.x as
installed computes others; for Qwen3-VL transformers' own, which agree). Needs the training stack (vLLM)
and a GPU; runs for every family with a stand-in (the `family` fixture). vLLM hands the processor outputs to
the model in its dtype, so `second_per_grid_ts` arrives as bf16 there.
"""

import functools
from types import SimpleNamespace

import pytest
import torch

from rarft_plugin.models import VllmVideoRequest
from rarft_plugin.models.qwen_vl import restore_installed_video_positions
from rarft_plugin.openrlhf_agent import prepare_video_prompt
from rarft_plugin.prompts import build_messages
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec

pytestmark = pytest.mark.gpu
vllm = pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def setup(family, tiny_model, tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    clip = write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=12, size=(112, 84))
    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", "the bar moves"), tokenize=False, add_generation_prompt=True
    )
    video, prompt_ids, tensors = prepare_video_prompt(processor, prompt, VideoSpec(str(clip)), cache=False)
    return family, tiny_model, processor, model, video, prompt_ids, tensors


def qwen2_5_vl_positions(config, ids, features):
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as VllmModel

    model = SimpleNamespace(config=config)  # the two methods the GPU runner calls, on the config alone
    model.iter_mm_grid_thw = functools.partial(VllmModel.iter_mm_grid_thw, model)
    return VllmModel.get_mrope_input_positions(model, ids, features)[0]


def qwen3_vl_positions(config, ids, features):
    from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration as VllmModel

    return VllmModel._get_mrope_input_positions(ids, features, config)[0]


VLLM_POSITIONS = {"qwen2_5_vl": qwen2_5_vl_positions, "qwen3_vl": qwen3_vl_positions}


def vllm_positions(family, directory, prompt_ids, request: VllmVideoRequest):
    """(expanded prompt ids, M-RoPE positions (3, L), the video's multimodal feature) as the installed vLLM computes
    them."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.input_processor import InputProcessor

    config = EngineArgs(model=str(directory), max_model_len=4096, enforce_eager=True).create_engine_config()
    prompt = TokensPrompt(prompt_token_ids=prompt_ids, **request.prompt_fields())
    engine_request = InputProcessor(config).process_inputs(
        "positions", prompt, SamplingParams(max_tokens=1), supported_tasks=("generate",)
    )
    ids = list(engine_request.prompt_token_ids)
    positions = VLLM_POSITIONS[family.NAME](config.model_config.hf_config, ids, engine_request.mm_features)
    (feature,) = engine_request.mm_features
    return ids, positions, feature


def training_positions(model, processor, prompt_ids, tensors):
    ids = torch.tensor([prompt_ids])
    types = (ids == processor.video_token_id).long() * 2  # as the processor marks video tokens
    video = {k: v for k, v in tensors.items() if k in ("video_grid_thw", "second_per_grid_ts")}
    positions, _ = model.model.get_rope_index(ids, types, attention_mask=torch.ones_like(ids), **video)
    return positions[:, 0, :]


def test_vllm_positions_equal_training_positions(setup):
    family, directory, processor, model, video, prompt_ids, tensors = setup
    request = family.vllm_video_request(video, vllm.__version__)
    ids, positions, feature = vllm_positions(family, directory, family.vllm_prompt_ids(processor, prompt_ids), request)
    assert ids == prompt_ids  # vLLM expands the one placeholder to exactly the prompt training sees (timestamps too)
    if "second_per_grid_ts" in tensors:
        second_per_grid = feature.data["second_per_grid_ts"].data.item()
        assert second_per_grid == pytest.approx(tensors["second_per_grid_ts"].item(), rel=1e-2)
        assert second_per_grid == pytest.approx(2 / video.fps, rel=1e-2)
    restore_installed_video_positions()
    installed = training_positions(model, processor, prompt_ids, tensors)
    family.use_reference_video_positions()
    try:
        trained = training_positions(model, processor, prompt_ids, tensors)
    finally:
        restore_installed_video_positions()
    assert torch.equal(positions.long(), trained.long())
    if torch.equal(installed.long(), trained.long()):
        print(f"{family.NAME}: the installed transformers already computes vLLM's positions")
    temporal = positions[0, torch.tensor(ids) == processor.video_token_id].unique()
    assert len(temporal) == int(tensors["video_grid_thw"][0, 0])  # one temporal position per grid: not collapsed
    print(f"vLLM {vllm.__version__}, {family.NAME}: temporal positions {temporal.tolist()}")


def test_without_the_metadata_vllm_0_26_to_0_30_would_assume_24_fps(setup):
    family, directory, processor, model, video, prompt_ids, tensors = setup
    request = family.vllm_video_request(video, vllm.__version__)
    if request.mm_processor_kwargs is None:
        pytest.skip(f"vLLM {vllm.__version__} takes {family.NAME}'s metadata in the video item")
    bare = VllmVideoRequest(request.multi_modal_data)  # what OpenRLHF's own generate would send
    _, positions, feature = vllm_positions(family, directory, family.vllm_prompt_ids(processor, prompt_ids), bare)
    assert feature.data["second_per_grid_ts"].data.item() == pytest.approx(2 / 24, rel=1e-2)  # 24 fps for 2 FPS
    family.use_reference_video_positions()
    try:
        assert not torch.equal(positions.long(), training_positions(model, processor, prompt_ids, tensors).long())
    finally:
        restore_installed_video_positions()
