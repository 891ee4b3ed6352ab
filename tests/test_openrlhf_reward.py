"""The reward file through OpenRLHF's own loader and executor (openrlhf.utils.agent.SingleTurnAgentExecutor)."""

import json
import subprocess
import sys

import pytest
import torch
from support.chatml import chat_prompt, chatml_tokenizer, run_text_executor

from rarft_plugin.paths import plugin_path
from rarft_plugin.rewards import REWARD_NAMES, score
from rarft_plugin.rollout_logs import ROLLOUT_LOG_NAMES

LABEL = {
    "relevant": False,
    "timestamp": None,
    "duration": 20.0,
    "query": "a man cuts a steak",
    "answer_time": "2.00 to 6.00",
    "answer_refusal": "The man is cooking pasta; nobody cuts a steak.",
    "query_relevant": "a man cooks pasta",
}
RESPONSES = [
    "<think>The video shows pasta.</think> <answer>The man cooks pasta; there is no steak.</answer> "
    "<correct>a man cooks pasta</correct>",
    "<think>x</think> <answer>2.00 to 6.00</answer> <correct></correct>",
    "garbage <answer>nan to 1e309",
    "",
]


@pytest.fixture(scope="module")
def tokenizer():
    return chatml_tokenizer(RESPONSES)


def run_executor(tokenizer, response, label):
    return run_text_executor(tokenizer, response, label, chat_prompt("a man cuts a steak"))


@pytest.mark.parametrize("response", RESPONSES)
def test_reward_through_openrlhf_single_turn_executor(tokenizer, sbert, response):
    output = run_executor(tokenizer, response, json.dumps(LABEL))
    expected = score(response, LABEL, similarity=sbert)
    assert output["reward"] is not None, "OpenRLHF swallowed an exception from reward_func"
    assert output["reward"].shape == (1,) and output["scores"].shape == (1,)
    assert output["reward"].item() == pytest.approx(expected["total"], abs=1e-5)
    assert output["scores"].item() in (0.0, 1.0)  # the task score, not the total (rarft_plugin.rollout_logs)
    assert set(output["extra_logs"]) == {*REWARD_NAMES, *ROLLOUT_LOG_NAMES}
    for name in REWARD_NAMES:
        assert output["extra_logs"][name].item() == pytest.approx(expected[name], abs=1e-5)


def test_reward_func_shapes_for_a_batch(sbert):
    from rarft_plugin.openrlhf_reward import reward_func

    queries = [f"<|im_start|>assistant\n{r}<|im_end|>" for r in RESPONSES]
    out = reward_func(queries, [""] * len(queries), [json.dumps(LABEL)] * len(queries))
    assert out["rewards"].dtype == torch.float32 and out["rewards"].shape == (len(RESPONSES),)
    assert all(out["extra_logs"][name].shape == (len(RESPONSES),) for name in (*REWARD_NAMES, *ROLLOUT_LOG_NAMES))
    assert out["scores"].tolist() == [1.0, 0.0, 0.0, 0.0]  # only the first refuses the irrelevant query in a block


@pytest.mark.parametrize(
    "response, label",
    [
        ("<answer>no steak \ud800</answer> <correct>a man \udfff cooks</correct>", LABEL),
        ("<answer>no\x00 steak\x1b[1m</answer> <correct>\x85a man cooks</correct>", LABEL),
        (RESPONSES[0], dict(LABEL, query="a man \ud800 cuts", answer_refusal="\udc00", query_relevant="\x00\ud83d")),
    ],
    ids=["surrogates-in-the-response", "control-characters", "surrogates-in-the-label"],
)
def test_reward_func_never_raises_on_text_no_tokenizer_takes(sbert, response, label):
    from rarft_plugin.openrlhf_reward import reward_func

    out = reward_func([f"<|im_start|>assistant\n{response}<|im_end|>"], [""], [json.dumps(label)])
    assert torch.isfinite(out["rewards"]).all()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RARFT_VARIANT": "trl"}, "RARFT_VARIANT"),
        ({"RARFT_REWARD_WEIGHTS": "explain=abc"}, "RARFT_REWARD_WEIGHTS"),
        ({"RARFT_CORRECTION": "copyproof"}, "RARFT_CORRECTION"),
    ],
)
def test_bad_environment_options_are_named(env, message):
    from rarft_plugin.reward_options import RewardOptions

    with pytest.raises(ValueError, match=message):
        RewardOptions.from_env(env)


def test_released_variant_from_environment(sbert):
    from rarft_plugin.reward_options import RewardOptions

    options = RewardOptions.from_env({"RARFT_VARIANT": "released", "RARFT_REWARD_WEIGHTS": "format=2"})
    options = options.score_options(sbert)
    assert options["variant"] == "released" and options["weights"]["format"] == 2.0
    assert options["correction"] == "similarity"  # the paper's eq. 7 stays the default


def test_contrastive_correction_from_environment_reaches_the_reward(sbert, monkeypatch):
    import rarft_plugin.openrlhf_reward as entry
    from rarft_plugin.reward_options import RewardOptions

    label = {
        "relevant": False,
        "timestamp": None,
        "duration": 20.0,
        "query": "a man cuts a steak",
        "query_relevant": "a man cooks pasta in the kitchen",
    }
    copy = (
        "<|im_start|>assistant\n<think>t</think> <answer>No.</answer> <correct>a man cuts a steak</correct><|im_end|>"
    )
    rewards = {}
    for value in ("similarity", "contrastive"):
        monkeypatch.setattr(entry, "_OPTIONS", RewardOptions.from_env({"RARFT_CORRECTION": value}).score_options())
        rewards[value] = float(entry.reward_func([copy], [""], [json.dumps(label)])["extra_logs"]["correction"][0])
    assert rewards["similarity"] > 0.3 and rewards["contrastive"] == pytest.approx(-1.0, abs=1e-5)


def _other_markers_family():
    from rarft_plugin.models.qwen2_5_vl import Qwen2_5_VL
    from rarft_plugin.parsing import ChatMarkers

    class OtherMarkers(Qwen2_5_VL):  # a family whose chat template is not ChatML
        NAME, MODEL_TYPES, PROCESSOR_CLASSES = "other_markers", ("other_markers",), ("OtherMarkersProcessor",)
        CHAT = ChatMarkers("<|start_header_id|>assistant<|end_header_id|>", ("<|eot_id|>",))

    return OtherMarkers()


@pytest.mark.parametrize("family, read", [(None, False), ("qwen2_5_vl", False), ("other_markers", True)])
def test_the_reward_file_reads_responses_with_the_markers_of_the_family_the_environment_names(
    monkeypatch, sbert, family, read
):
    import rarft_plugin.openrlhf_reward as entry
    from rarft_plugin import models

    other = _other_markers_family()
    monkeypatch.setattr(models, "families", lambda: (models.REGISTRY.families()[0], other))
    if family is None:
        monkeypatch.delenv("RARFT_MODEL_FAMILY", raising=False)
    else:
        monkeypatch.setenv("RARFT_MODEL_FAMILY", family)
    entry.chat_markers.cache_clear()
    query = (
        "<|start_header_id|>user<|end_header_id|>\nFind the moment: a man cuts a steak.<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n{RESPONSES[0]}<|eot_id|>"
    )
    try:
        out = entry.reward_func([query], [""], [json.dumps(LABEL)])
    finally:
        entry.chat_markers.cache_clear()
    expected = score(RESPONSES[0], LABEL, similarity=sbert)
    assert (out["extra_logs"]["format"].item() == expected["format"] == 1.0) is read  # ChatML markers miss the turn


@pytest.mark.parametrize("name", ["reward", "agent"])
def test_paths_command_prints_absolute_plugin_paths(name):
    printed = subprocess.run(
        [sys.executable, "-m", "rarft_plugin.paths", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == str(plugin_path(name)) and printed.startswith("/") and printed.endswith(".py")


def test_paths_command_rejects_unknown_names():
    done = subprocess.run([sys.executable, "-m", "rarft_plugin.paths", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
