"""vLLM's own temporal M-RoPE positions for a rarft video request equal the ones training computes.

A random tiny model cannot tell positions apart through its log-probs (rollout and training
log-probs agree whatever the positions), so this test reads the positions themselves: the installed
vLLM's input processor turns the executor's request into what its engine runs (expanded prompt,
processor outputs, `second_per_grid_ts`), and vLLM's Qwen2.5-VL model class computes the M-RoPE
positions from that as its GPU runner does; the model computes training's from the executor's
tensors, with the reference positions rarft installs in every training worker
(`rarft_plugin.models.qwen2_5_vl`; transformers 5.x as installed computes others). Needs the training stack
(vLLM) and a GPU. vLLM hands the processor outputs to the model in its dtype, so `second_per_grid_ts`
arrives as bf16 there.
"""

import functools
from types import SimpleNamespace

import pytest
import torch

from rarft_plugin.models import VllmVideoRequest, family_named
from rarft_plugin.models.qwen_vl import restore_installed_video_positions
from rarft_plugin.openrlhf_agent import prepare_video_prompt
from rarft_plugin.prompts import build_messages
from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_test_video
from rarft_plugin.video import VideoSpec

pytestmark = pytest.mark.gpu
vllm = pytest.importorskip("vllm")
FAMILY = family_named("qwen2_5_vl")
use_reference_video_positions = FAMILY.use_reference_video_positions


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    directory = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny"))
    clip = write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=12, size=(112, 84))
    processor = AutoProcessor.from_pretrained(directory)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory)
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", "the bar moves"), tokenize=False, add_generation_prompt=True
    )
    video, prompt_ids, tensors = prepare_video_prompt(processor, prompt, VideoSpec(str(clip)), cache=False)
    return directory, processor, model, video, prompt_ids, tensors


def vllm_positions(directory, prompt_ids, request: VllmVideoRequest):
    """(expanded prompt ids, M-RoPE positions (3, L), second_per_grid_ts) as the installed vLLM computes them."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration as VllmModel
    from vllm.v1.engine.input_processor import InputProcessor

    config = EngineArgs(model=str(directory), max_model_len=4096, enforce_eager=True).create_engine_config()
    prompt = TokensPrompt(prompt_token_ids=prompt_ids, **request.prompt_fields())
    engine_request = InputProcessor(config).process_inputs(
        "positions", prompt, SamplingParams(max_tokens=1), supported_tasks=("generate",)
    )
    # the two methods the GPU runner calls, on the model's config alone (no weights needed)
    model = SimpleNamespace(config=config.model_config.hf_config)
    model.iter_mm_grid_thw = functools.partial(VllmModel.iter_mm_grid_thw, model)
    ids = list(engine_request.prompt_token_ids)
    positions, _ = VllmModel.get_mrope_input_positions(model, ids, engine_request.mm_features)
    (feature,) = engine_request.mm_features
    return ids, positions, feature.data["second_per_grid_ts"].data.item()


def training_positions(model, processor, prompt_ids, tensors):
    ids = torch.tensor([prompt_ids])
    types = (ids == processor.video_token_id).long() * 2  # as the processor marks video tokens
    positions, _ = model.model.get_rope_index(
        ids,
        types,
        video_grid_thw=tensors["video_grid_thw"],
        second_per_grid_ts=tensors["second_per_grid_ts"],
        attention_mask=torch.ones_like(ids),
    )
    return positions[:, 0, :]


def test_vllm_positions_equal_training_positions(setup):
    from openrlhf.utils.vlm_utils import dedup_media_tokens

    directory, processor, model, video, prompt_ids, tensors = setup
    request = FAMILY.vllm_video_request(video, vllm.__version__)
    collapsed = dedup_media_tokens(prompt_ids, {processor.video_token_id})
    ids, positions, second_per_grid = vllm_positions(directory, collapsed, request)
    assert ids == prompt_ids  # vLLM expands the one placeholder to exactly the prompt training sees
    assert second_per_grid == pytest.approx(tensors["second_per_grid_ts"].item(), rel=1e-2)
    assert second_per_grid == pytest.approx(2 / video.fps, rel=1e-2)
    restore_installed_video_positions()
    installed = training_positions(model, processor, prompt_ids, tensors)
    use_reference_video_positions()
    try:
        trained = training_positions(model, processor, prompt_ids, tensors)
    finally:
        restore_installed_video_positions()
    assert torch.equal(positions.long(), trained.long())
    if torch.equal(installed.long(), trained.long()):
        print("the installed transformers already computes the reference positions")
    temporal = positions[0, torch.tensor(ids) == processor.video_token_id].unique()
    assert len(temporal) == int(tensors["video_grid_thw"][0, 0])  # one temporal position per grid: not collapsed
    print(f"vLLM {vllm.__version__}: second_per_grid_ts {second_per_grid}, temporal positions {temporal.tolist()}")


def test_without_the_metadata_vllm_0_26_to_0_30_would_assume_24_fps(setup):
    from openrlhf.utils.vlm_utils import dedup_media_tokens

    directory, processor, model, video, prompt_ids, tensors = setup
    request = FAMILY.vllm_video_request(video, vllm.__version__)
    if request.mm_processor_kwargs is None:
        pytest.skip(f"vLLM {vllm.__version__} takes the metadata in the video item")
    collapsed = dedup_media_tokens(prompt_ids, {processor.video_token_id})
    bare = VllmVideoRequest(request.multi_modal_data)  # what OpenRLHF's own generate would send
    _, positions, second_per_grid = vllm_positions(directory, collapsed, bare)
    assert second_per_grid == pytest.approx(2 / 24, rel=1e-2)  # 24 fps assumed for 2-FPS frames
    use_reference_video_positions()
    try:
        assert not torch.equal(positions.long(), training_positions(model, processor, prompt_ids, tensors).long())
    finally:
        restore_installed_video_positions()
