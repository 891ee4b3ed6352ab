"""rarft_plugin.launch.memory: the estimate of a run's GPU and host memory, from the architecture and the flags."""

import dataclasses
import json

import pytest

from rarft_plugin.launch.memory import (
    GB,
    Setup,
    architecture_of,
    estimate,
    fit_flags,
    main,
    parameter_counts,
    setup_from_flags,
)
from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS

SEVEN_B = architecture_of(PUBLISHED_CONFIGS["7b"])
THREE_B = architecture_of(PUBLISHED_CONFIGS["3b"])
RECIPE_FLAGS = (
    "--actor.num_gpus_per_node 8 --vllm.gpu_memory_utilization 0.5 --train.colocate_all --vllm.enable_sleep "
    "--ds.enable_sleep --ds.zero_stage 3 --actor.gradient_checkpointing_enable --rollout.n_samples_per_prompt 8 "
    "--data.max_len 4608 --rollout.batch_size 16 --train.micro_batch_size 1 --algo.kl.init_coef 0.04 "
    "--actor.freeze_visual_encoder"
).split()


def test_the_recipes_flags_describe_the_papers_setup():
    assert setup_from_flags(RECIPE_FLAGS) == Setup()  # the defaults are the paper's recipe on 8 x 80 GB


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        (["--ds.adam_offload"], "adam_offload", True),
        (["--ref.offload"], "ref_offload", True),
        (["--actor.num_gpus_per_node", "1"], "gpus", 1),
        (["--data.max_len=8192"], "max_len", 8192),
        (["--rollout.n_samples_per_prompt", "16"], "rollouts", 256),
        (["--rollout.batch_size", "4"], "prompts", 4),
        (["--algo.kl.init_coef", "0"], "reference", False),
        (["--vllm.gpu_memory_utilization", "0.3"], "vllm_fraction", 0.3),
    ],
)
def test_a_later_flag_changes_the_setup(extra, field, value):
    assert getattr(setup_from_flags(RECIPE_FLAGS + extra), field) == value


def gpu(result, phase, part):
    return result.gpu[phase][part]


def test_zero3_spreads_the_actor_over_the_gpus():
    one, eight = (estimate(SEVEN_B, Setup(gpus=n, ds_sleep=False)) for n in (1, 8))
    part = "actor fp32 states + gradients"
    assert gpu(one, "ppo_train", part) == pytest.approx(8 * gpu(eight, "ppo_train", part))
    assert gpu(one, "ppo_train", part) == pytest.approx(16 * SEVEN_B.language_parameters)  # vision frozen


def test_adam_offload_moves_the_fp32_states_to_the_host():
    setup = Setup(gpus=1)
    kept, offloaded = estimate(SEVEN_B, setup), estimate(SEVEN_B, dataclasses.replace(setup, adam_offload=True))
    moved = 16 * SEVEN_B.language_parameters
    assert gpu(kept, "ppo_train", "actor fp32 states + gradients") - gpu(
        offloaded, "ppo_train", "actor fp32 states + gradients"
    ) == pytest.approx(moved)
    assert offloaded.host["Adam states on the host (--ds.adam_offload)"] == pytest.approx(moved)
    assert offloaded.host["actor states parked while vLLM generates (--ds.enable_sleep)"] == 0  # nothing left to park


def test_a_trained_vision_tower_adds_its_states():
    frozen, trained = (estimate(SEVEN_B, Setup(freeze_vision=f)) for f in (True, False))
    part = "actor fp32 states + gradients"
    extra = gpu(trained, "ppo_train", part) - gpu(frozen, "ppo_train", part)
    assert extra == pytest.approx(16 * SEVEN_B.vision_parameters / 8)


def test_without_sleep_vllm_keeps_its_memory_while_the_actor_trains():
    awake = estimate(SEVEN_B, Setup(vllm_sleep=False))
    assert gpu(awake, "ppo_train", "vLLM (weights + KV cache)") == pytest.approx(0.5 * 80 * GB)
    assert awake.host["vLLM weights parked while training (--vllm.enable_sleep), every engine"] == 0


def test_the_reference_moves_to_the_host_with_ref_offload():
    result = estimate(SEVEN_B, Setup(gpus=1, ref_offload=True))
    assert gpu(result, "generation", "reference bf16 weights") == 0
    assert result.host["reference weights (--ref.offload)"] == pytest.approx(2 * SEVEN_B.parameters)


def test_the_kv_cache_note_says_when_rollouts_queue():
    roomy = estimate(SEVEN_B, Setup(gpus=1, gpu_memory=141 * GB))
    tight = estimate(SEVEN_B, Setup(gpus=1, gpu_memory=80 * GB))
    assert roomy.kv_cache_available >= roomy.kv_cache_needed and not any("queue" in n for n in roomy.notes)
    assert any("queue" in note for note in tight.notes)
    assert roomy.kv_cache_needed == pytest.approx(128 * 4608 * 2 * 28 * 4 * 128 * 2)


@pytest.mark.parametrize(
    ("model", "gpus", "memory", "flags"),
    [
        (SEVEN_B, 8, 80, []),  # the paper's 8 x A100
        (SEVEN_B, 1, 141, ["--ds.adam_offload"]),  # 18 bytes x 7.6 B parameters do not fit one H200
        (THREE_B, 1, 141, []),
        (THREE_B, 1, 86, []),  # an H100 80GB's 85.5 GB (measured without offload: 4 steps, ppo_train 83.7 GB)
        (THREE_B, 1, 80, ["--ref.offload"]),  # the reference's 7.5 GB is enough
        (SEVEN_B, 1, 80, ["--ds.adam_offload", "--ref.offload"]),
        (SEVEN_B, 1, 48, ["--ds.adam_offload", "--ref.offload"]),  # does not fit at all: the closest
        (SEVEN_B, 2, 80, ["--ds.adam_offload"]),
    ],
)
def test_fit_flags_add_the_cheapest_offloads_that_fit(model, gpus, memory, flags):
    added, setup = fit_flags(model, Setup(gpus=gpus, gpu_memory=memory * GB))
    assert added == flags
    assert (setup.adam_offload, setup.ref_offload) == ("--ds.adam_offload" in flags, "--ref.offload" in flags)


def test_fit_flags_add_nothing_the_setup_has():
    added, setup = fit_flags(SEVEN_B, Setup(gpus=1, gpu_memory=80 * GB, ref_offload=True))
    assert added == ["--ds.adam_offload"] and setup.ref_offload and setup.adam_offload


def test_the_phases_carry_what_a_gpu_measured_beyond_the_model():
    """Generation and make_experience measured ~5 GB above their parts on an H100; ppo_train's peak did not."""
    phases = estimate(THREE_B, Setup(gpus=1, gpu_memory=86 * GB)).gpu
    unaccounted = "unaccounted (measured: allocator cache, workspaces)"
    assert {phase: parts.get(unaccounted, 0.0) for phase, parts in phases.items()} == {
        "generation": 5 * GB,
        "make_experience": 5 * GB,
        "ppo_train": 0.0,
    }


def test_the_estimate_of_a_model_directory_uses_its_config(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", **PUBLISHED_CONFIGS["3b"]}))
    assert (
        main(
            [
                "--model",
                str(tmp_path),
                "--gpu-memory",
                "80",
                "--fit",
                "--",
                *RECIPE_FLAGS,
                "--actor.num_gpus_per_node",
                "1",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split() == ["--ref.offload"]
    assert main(["--size", "3b", "--", *RECIPE_FLAGS]) == 0
    assert "3.75 B parameters" in capsys.readouterr().out


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "qwen2_5_vl", "vision_config": {}},
        None,
        {"model_type": "qwen3_vl", **PUBLISHED_CONFIGS["7b"]},  # Qwen2.5-VL's layout counted for another family
        ["not", "a", "config"],
    ],
)
def test_a_model_it_cannot_read_or_estimate_is_a_one_line_error(tmp_path, capsys, config):
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["--model", str(tmp_path), "--fit"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


def test_decoding_processes_add_host_memory_per_engine(monkeypatch, capsys):
    host = {}
    for value in ("", "4"):
        monkeypatch.setenv("RARFT_DECODE_PROCESSES", value)
        assert main(["--size", "7b", "--", *RECIPE_FLAGS]) == 0
        host[value] = float(capsys.readouterr().out.split("; host ")[1].split(" GB")[0])
    assert host["4"] - host[""] == pytest.approx(8 * 4 * 0.55, abs=1)  # 8 engines x 4 processes x 0.55 GB


@pytest.mark.parametrize(("gpus", "prompts", "entries"), [(8, 16, 0), (1, 16, 8), (1, 4, 0), (2, 40, 24)])
def test_an_engine_given_more_than_8_clips_a_step_keeps_the_rest_prepared(gpus, prompts, entries):
    """The prefetch keeps a step's prepared clips on each engine (`openrlhf_agent`: at least the cache's 8)."""
    from rarft_plugin.launch.memory import PREPARED_ENTRY, PREPARED_KEPT
    from rarft_plugin.openrlhf_agent import PREPARED_CACHE_SIZE

    assert PREPARED_KEPT == PREPARED_CACHE_SIZE  # the same cache
    host = estimate(SEVEN_B, Setup(gpus=gpus, prompts=prompts)).host
    assert host["prepared clips beyond the cache's 8, every engine (the prefetch keeps a step's)"] == pytest.approx(
        entries * PREPARED_ENTRY
    )


@pytest.mark.parametrize(("gpus", "prompts", "decoding"), [(8, 16, 16), (1, 16, 16), (1, 4, 4), (3, 16, 18)])
def test_each_engine_decodes_its_share_of_a_steps_clips_at_once(gpus, prompts, decoding):
    """An engine decodes the clips it gets a step together (`ceil(prompts / engines)` each)."""
    from rarft_plugin.launch.memory import DECODING_CLIP

    host = estimate(SEVEN_B, Setup(gpus=gpus, prompts=prompts)).host
    assert host["a step's clips decoding at once, every engine"] == pytest.approx(decoding * DECODING_CLIP)


def test_parameter_counts_follow_the_config():
    config = json.loads(json.dumps(PUBLISHED_CONFIGS["7b"]))
    language, vision = parameter_counts(config)
    config["text_config"]["num_hidden_layers"] += 1
    assert parameter_counts(config)[0] - language == pytest.approx(233_057_792, abs=0)
    config["tie_word_embeddings"] = True
    assert parameter_counts(config)[0] == language + 233_057_792 - 152064 * 3584
    assert parameter_counts(config)[1] == vision
