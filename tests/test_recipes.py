"""recipes/*.sh: syntax, --help, clear errors, and each final command parsed by OpenRLHF's own train_ppo_ray."""

import functools
import json
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support.import_stand_ins import install_import_stand_ins
from support.recipe_argv import recipe_argv, run_recipe_printing

from rarft_plugin.launch.checks import Placement, placement_problems
from rarft_plugin.launch.upstream import openrlhf_arguments
from rarft_plugin.prompt_row import make_row
from rarft_plugin.prompts import TEMPLATE_FOR_MODEL
from rarft_plugin.reward_options import RewardOptions, reward_table, variables_help
from rarft_plugin.schema import parse_label
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec

install_import_stand_ins()  # OpenRLHF's train_ppo_ray imports vllm and flash_attn at module load

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
BASE_MODEL_RECIPES = ["time_r1.sh", "videochat_r1.sh", "videochat_r1_think.sh", "qwen2_5_vl_7b.sh", "qwen3_vl_8b.sh"]
ALL_RECIPES = [*BASE_MODEL_RECIPES, "single_gpu_smoke.sh"]
VARIABLES = [
    "RARFT_MODEL",
    "RARFT_DATA",
    "RARFT_OUTPUT",
    "RARFT_NUM_GPUS",
    "RARFT_VLLM_GPUS",
    "RARFT_VLLM_TP",
    "RARFT_VARIANT",
    "RARFT_CORRECTION",
    "RARFT_EXPLAIN",
    "RARFT_REWARD_WEIGHTS",
    "RARFT_SBERT_MODEL",
    "RARFT_SBERT_DEVICE",
    "RARFT_DRY_RUN",
    "RARFT_PRESET",
    "PYTHON",
]

# The paper's setup (recipes/common.sh) as OpenRLHF's parsed arguments: (section, name) -> value.
PAPER_SETUP = {
    ("algo.advantage", "estimator"): "group_norm",
    ("rollout", "n_samples_per_prompt"): 8,
    ("rollout", "batch_size"): 16,
    ("train", "batch_size"): 128,
    ("train", "num_episodes"): 3,
    ("train", "max_epochs"): 1,
    ("rollout", "temperature"): 1.0,
    ("rollout", "max_new_tokens"): 200,
    ("algo.kl", "init_coef"): 0.04,
    ("algo.kl", "use_loss"): True,
    ("algo.kl", "estimator"): "k3",
    ("actor", "eps_clip"): 0.2,
    ("actor.adam", "lr"): 1e-6,
    ("actor.adam", "betas"): [0.9, 0.999],
    ("actor", "lr_scheduler"): "linear",
    ("actor", "freeze_visual_encoder"): True,
    ("ds", "zero_stage"): 3,
    ("ds", "param_dtype"): "bf16",
    ("ds", "attn_implementation"): "flash_attention_2",
    ("actor", "num_gpus_per_node"): 8,
    ("vllm", "num_engines"): 8,
    ("train", "colocate_all"): True,
    ("data", "max_len"): 4608,
    ("actor", "loss_agg_mode"): "seq-mean-token-mean",
}
# RARFT_PRESET=released: the released training script where it differs (docs/train.md, "The two presets").
RELEASED_SETUP = {
    **PAPER_SETUP,
    ("rollout", "batch_size"): 8,  # train_rarft.sh: 8 GPUs x 1 prompt
    ("train", "batch_size"): 64,
    ("train", "num_episodes"): 1,  # the data file holds the 3 epochs (--pairing released)
    ("actor", "loss_agg_mode"): "token-mean",  # trainer:742
}
SMOKE_SETUP = {
    **PAPER_SETUP,
    ("rollout", "n_samples_per_prompt"): 4,
    ("rollout", "batch_size"): 4,
    ("train", "batch_size"): 16,
    ("train", "num_episodes"): 1,
    ("data", "max_samples"): 8,
    ("actor", "num_gpus_per_node"): 1,
    ("vllm", "num_engines"): 1,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A model directory, a training JSONL with a real clip, per template."""
    root = tmp_path_factory.mktemp("recipe-inputs")
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "vision_config": {}}))
    qwen3_vl = root / "qwen3_vl"
    qwen3_vl.mkdir()
    (qwen3_vl / "config.json").write_text(json.dumps({"model_type": "qwen3_vl", "vision_config": {}}))
    clip = write_test_video(root / "clip.mp4", seconds=6)
    label = {
        "relevant": False,
        "timestamp": None,
        "duration": 6.0,
        "query": "a dog barks",
        "answer_refusal": "There is no dog.",
        "query_relevant": "the bar moves",
    }
    data = {}
    for name, template, row_id in (
        ("ra_rft", "ra_rft", "0:0"),
        ("ra_rft_released", "ra_rft_released", "0:0"),
        ("released_pairing", "ra_rft_released", "0:0@e1"),  # rarft-prep to-openrlhf --pairing released
    ):
        row = make_row(parse_label(label), VideoSpec(str(clip)), template=template, datasource="test", row_id=row_id)
        data[name] = root / f"{name}.jsonl"
        data[name].write_text(json.dumps(row) + "\n")
    return {"model": model, "qwen3_vl": qwen3_vl, "data": data, "root": root}


@functools.cache
def _run(recipe, args, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RARFT_")}
    return subprocess.run(
        ["bash", str(RECIPES / recipe), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean, "PYTHON": sys.executable, **dict(env)},
        timeout=300,
    )


def run_recipe(recipe, *args, **env):
    """The recipe's result; identical calls share one run (each dry run loads Python and SentenceBERT)."""
    return _run(recipe, args, tuple(sorted(env.items())))


def dry_run_arguments(recipe, inputs, *args, template="ra_rft", **env):
    done = run_recipe(
        recipe,
        *args,
        RARFT_DRY_RUN="1",
        RARFT_MODEL=str(inputs["model"]),
        RARFT_DATA=str(inputs["data"][template]),
        RARFT_OUTPUT=str(inputs["root"] / "out"),
        **env,
    )
    assert done.returncode == 0, done.stderr
    tokens = shlex.split(done.stdout.strip().splitlines()[-1])
    start = tokens.index("openrlhf.cli.train_ppo_ray") + 1
    return tokens[:start], openrlhf_arguments(tokens[start:])[1]


def setting(args, section, name):
    for part in section.split("."):
        args = getattr(args, part)
    value = getattr(args, name)
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("script", sorted(p.name for p in RECIPES.glob("*.sh")))
def test_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(RECIPES / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_help_explains_every_variable(recipe):
    done = run_recipe(recipe, "--help")
    assert done.returncode == 0, done.stderr
    assert all(variable in done.stdout for variable in VARIABLES)
    assert "Hardware:" in done.stdout and "rarft-prep to-openrlhf" in done.stdout


def test_help_shows_the_reward_options_and_the_reward_table_of_the_package():
    """Not hand-written in common.sh: printed by `python -m rarft_plugin.reward_options`."""
    printed = run_recipe("time_r1.sh", "--help").stdout
    assert variables_help() in printed and reward_table().splitlines()[1] in printed


def test_help_gives_the_estimated_memory_of_the_recipe_and_of_one_gpu():
    printed = run_recipe("time_r1.sh", "--help").stdout
    assert "Memory, ESTIMATED from the published 7b Qwen2.5-VL architecture" in printed
    assert "- 8 GPUs of 80 GB:" in printed and "8.29 B parameters" in printed and "host 386 GB" in printed
    assert "- one GPU of 141 GB (RARFT_NUM_GPUS=1 adds --ds.adam_offload):" in printed
    smoke = run_recipe("single_gpu_smoke.sh", "--help").stdout
    assert "- one GPU of 141 GB (RARFT_NUM_GPUS=1 adds nothing):" in smoke and "3.75 B parameters" in smoke
    # and what a GPU run measured: none at 7b yet, the 3B's first step on an H100 (a cut-off phase as a bound)
    assert "measured: nothing at 7b yet" in printed and "measured, 3b (one H100 80GB" in printed
    assert "ppo_train >= 60 GB; host 54 GB" in smoke and "measured: nothing" not in smoke


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({"RARFT_PRESET": "released"}, "host 377 GB"),  # 8 prompts a step: half the experiences and the clips decoding
        ({"RARFT_DECODE_PROCESSES": "4"}, "host 404 GB"),  # 4 decoding processes per engine, 0.55 GB each
    ],
)
def test_the_estimate_follows_the_preset_and_the_decoding_processes(env, host):
    peak = "8.29 B parameters: GPU peak 52 GB in generation (make_experience 18, ppo_train 35): fits in 95%"
    assert f"{peak}; {host}" in run_recipe("time_r1.sh", "--help", **env).stdout


def test_a_recipe_without_an_estimate_says_so_and_one_gpu_adds_nothing(inputs):
    """Qwen3-VL-8B: the estimator counts Qwen2.5-VL's layout only; no figure rather than a wrong one."""
    printed = run_recipe("qwen3_vl_8b.sh", "--help").stdout
    assert "Memory: no estimate for this recipe's model" in printed and "GPU peak" not in printed
    _, parsed = dry_run_arguments(
        "qwen3_vl_8b.sh", {**inputs, "model": inputs["qwen3_vl"]}, RARFT_NUM_GPUS="1", RARFT_GPU_MEMORY="80"
    )
    assert (parsed.actor.num_gpus_per_node, parsed.ds.adam_offload, parsed.ref.offload) == (1, False, False)


@pytest.mark.parametrize(
    ("size", "gpus", "gpu_memory", "offload"),
    [
        ("7b", "1", "141", (True, False)),
        ("3b", "1", "141", (False, False)),
        ("3b", "1", "86", (False, False)),  # an H100 80GB as nvidia-smi reports it (81,559 MiB)
        ("3b", "1", "80", (False, True)),
        ("7b", "8", "80", (False, False)),
        ("7b", "2", "80", (True, False)),  # ZeRO-3 over 2: 61 GB of actor states a GPU beside the weights
    ],
)
def test_the_gpus_get_what_the_memory_estimate_says_they_need(inputs, tmp_path, size, gpus, gpu_memory, offload):
    from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS

    model = tmp_path / f"model_{size}"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", **PUBLISHED_CONFIGS[size]}))
    _, parsed = dry_run_arguments(
        "time_r1.sh", {**inputs, "model": model}, RARFT_NUM_GPUS=gpus, RARFT_GPU_MEMORY=gpu_memory
    )
    assert (parsed.ds.adam_offload, parsed.ref.offload) == offload


# The layouts a multi-GPU run tries (scripts/gpu_multi.py: hybrid engine or vLLM on GPUs of its own, engines of 1 or
# 2 GPUs), on each GPU count they fit, for a base-model recipe and the smoke run, in both presets.
MULTI = runpy.run_path(str(REPO / "scripts" / "gpu_multi.py"))
LAYOUT_CASES = [
    pytest.param(recipe, preset, gpus, layout, id=f"{recipe.removesuffix('.sh')}-{preset}-{gpus}gpu-{layout.name}")
    for recipe in ("time_r1.sh", "single_gpu_smoke.sh")
    for preset in ("paper", "released")
    for gpus in (1, 2, 4, 8)
    for layout in MULTI["fitting"](gpus)
]


@pytest.mark.parametrize("recipe, preset, gpus, layout", LAYOUT_CASES)
def test_every_layout_uses_each_gpu_once_within_openrlhfs_rules(recipe, preset, gpus, layout):
    """The command the recipe ends with passes rarft-train's placement check (OpenRLHF's and DeepSpeed's layout and
    batch rules, rarft_plugin.launch.checks) with exactly these GPUs visible, and uses every one of them."""
    env = layout.env(gpus)
    argv = recipe_argv(recipe, RARFT_PRESET=preset, **env)
    assert placement_problems(argv, gpus) == []
    vllm = int(env["RARFT_VLLM_GPUS"])
    place = Placement.of(argv)
    trainers, engines = gpus - vllm, (vllm or gpus) // layout.tp
    assert (place.actor_gpus, place.ref_gpus, place.engines, place.vllm_tp) == (trainers, trainers, engines, layout.tp)
    assert (place.colocate_all, place.colocate_actor_ref) == (vllm == 0, vllm > 0)
    assert place.gpus_needed()[0] == gpus
    sleeping = {"--vllm.enable_sleep", "--ds.enable_sleep"} & set(argv)
    assert sleeping == ({"--vllm.enable_sleep", "--ds.enable_sleep"} if vllm == 0 else set())  # only where shared


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RARFT_NUM_GPUS": "4", "RARFT_VLLM_GPUS": "4"}, "RARFT_VLLM_GPUS=4 leaves none of RARFT_NUM_GPUS=4 for the"),
        ({"RARFT_NUM_GPUS": "4", "RARFT_VLLM_TP": "3"}, "RARFT_VLLM_TP=3 must divide RARFT_NUM_GPUS=4 (the hybrid"),
        (
            {"RARFT_NUM_GPUS": "4", "RARFT_VLLM_GPUS": "3", "RARFT_VLLM_TP": "2"},
            "RARFT_VLLM_TP=2 must divide RARFT_VLLM_GPUS=3",
        ),
        ({"RARFT_NUM_GPUS": "two"}, "RARFT_NUM_GPUS, RARFT_VLLM_GPUS and RARFT_VLLM_TP take whole numbers, got 'two'"),
        ({"RARFT_NUM_GPUS": "08"}, "RARFT_NUM_GPUS, RARFT_VLLM_GPUS and RARFT_VLLM_TP take whole numbers, got '08'"),
        ({"RARFT_NUM_GPUS": "0"}, "RARFT_NUM_GPUS and RARFT_VLLM_TP must be at least 1"),
        ({"RARFT_NUM_GPUS": "2", "RARFT_VLLM_TP": "0"}, "RARFT_NUM_GPUS and RARFT_VLLM_TP must be at least 1"),
    ],
)
def test_a_layout_the_gpus_cannot_hold_is_refused_in_one_line(env, message):
    done = run_recipe_printing("time_r1.sh", **env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"time_r1.sh: {message}") and done.stderr.count("\n") == 1


def test_vllm_on_gpus_of_its_own_passes_openrlhfs_parser(inputs):
    """4 GPUs, 2 of them for one vLLM engine of tensor parallel size 2: what OpenRLHF parses (its own fix-ups)."""
    _, args = dry_run_arguments("time_r1.sh", inputs, RARFT_NUM_GPUS="4", RARFT_VLLM_GPUS="2", RARFT_VLLM_TP="2")
    placed = (args.actor.num_gpus_per_node, args.ref.num_gpus_per_node, args.vllm.num_engines)
    assert placed + (args.vllm.tensor_parallel_size,) == (2, 2, 1, 2)
    assert (args.train.colocate_all, args.train.colocate_actor_ref) == (False, True)
    assert (args.vllm.enable_sleep, args.ds.enable_sleep) == (False, False)


@pytest.mark.parametrize("recipe", BASE_MODEL_RECIPES)
def test_help_names_the_base_models_own_evaluation_template(recipe):
    key = recipe.removesuffix(".sh")
    assert f"--template {TEMPLATE_FOR_MODEL[key]} " in run_recipe(recipe, "-h").stdout


@pytest.mark.parametrize("recipe", ALL_RECIPES)
@pytest.mark.parametrize("missing", ["RARFT_MODEL", "RARFT_DATA"])
def test_an_unset_path_variable_is_a_clear_error(recipe, missing, inputs):
    env = {"RARFT_MODEL": str(inputs["model"]), "RARFT_DATA": str(inputs["data"]["ra_rft"])}
    del env[missing]
    done = run_recipe(recipe, **env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"{recipe}: {missing} is not set: ") and "--help" in done.stderr


# Qwen3-VL's prompts carry a timestamp per frame group (recipes/qwen3_vl_8b.sh says why 5120).
RECIPE_SETUPS = {**dict.fromkeys(BASE_MODEL_RECIPES, PAPER_SETUP), "single_gpu_smoke.sh": SMOKE_SETUP}
RECIPE_SETUPS["qwen3_vl_8b.sh"] = {**PAPER_SETUP, ("data", "max_len"): 5120}


@pytest.mark.parametrize("recipe, expected", RECIPE_SETUPS.items())
def test_final_command_is_accepted_by_openrlhf_with_the_papers_setup(recipe, expected, inputs):
    prefix, args = dry_run_arguments(recipe, inputs)
    assert {key: setting(args, *key) for key in expected} == expected
    assert (args.actor.model_name_or_path, args.data.prompt_dataset) == (
        str(inputs["model"]),
        str(inputs["data"]["ra_rft"]),
    )
    assert args.critic.model_name_or_path is None  # GRPO: no critic
    assert "RARFT_VARIANT=paper" in prefix


def test_the_released_preset_is_the_released_training_script(inputs):
    prefix, args = dry_run_arguments("time_r1.sh", inputs, template="released_pairing", RARFT_PRESET="released")
    assert {key: setting(args, *key) for key in RELEASED_SETUP} == RELEASED_SETUP
    assert "RARFT_VARIANT=released" in prefix  # the released reward code, whatever RARFT_VARIANT says


@pytest.mark.parametrize(
    "data, preset, message",
    [
        ("ra_rft_released", "released", "RARFT_PRESET=released trains on one relevant and one drawn irrelevant"),
        ("ra_rft", "reproduce", "RARFT_PRESET must be paper or released, got 'reproduce'"),
    ],
)
def test_the_released_preset_needs_released_pairing(inputs, data, preset, message):
    done = run_recipe(
        "time_r1.sh",
        RARFT_DRY_RUN="1",
        RARFT_MODEL=str(inputs["model"]),
        RARFT_DATA=str(inputs["data"][data]),
        RARFT_PRESET=preset,
    )
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_plugin_paths_resolve_and_load_the_way_openrlhf_loads_them(recipe, inputs):
    from openrlhf.trainer.ray.vllm_engine import _load_agent_executor
    from openrlhf.utils.agent import AgentExecutorBase

    _, args = dry_run_arguments(recipe, inputs)
    assert isinstance(_load_agent_executor(args.train.agent_func_path), AgentExecutorBase)
    assert (args.data.input_key, args.data.label_key, args.data.image_key) == ("input", "label", "video")
    assert args.data.apply_chat_template and args.data.max_images_per_prompt == 0


def test_user_flags_and_variables_override_the_recipe(inputs):
    _, parsed = dry_run_arguments(
        "time_r1.sh",
        inputs,
        "--train.seed",
        "7",
        "--rollout.n_samples_per_prompt",
        "4",
        "--train.micro_batch_size",
        "2",
        RARFT_NUM_GPUS="4",
    )
    expected = {
        ("train", "seed"): 7,
        ("rollout", "n_samples_per_prompt"): 4,
        ("train", "micro_batch_size"): 2,
        ("actor", "num_gpus_per_node"): 4,
        ("ref", "num_gpus_per_node"): 4,
        ("vllm", "num_engines"): 4,
    }
    assert {key: setting(parsed, *key) for key in expected} == expected


def test_reward_options_reach_the_worker_environment(inputs):
    prefix, _ = dry_run_arguments(
        "videochat_r1.sh",
        inputs,
        template="ra_rft_released",
        RARFT_VARIANT="released",
        RARFT_REWARD_WEIGHTS="explain=0.5",
        RARFT_SBERT_DEVICE="cuda",
        RARFT_CORRECTION="contrastive",
        RARFT_EXPLAIN="debiased",
    )
    assert prefix[:5] == [
        "RARFT_VARIANT=released",
        "RARFT_REWARD_WEIGHTS=" + RewardOptions(weights={"explain": 0.5}).to_env()["RARFT_REWARD_WEIGHTS"],
        "RARFT_SBERT_DEVICE=cuda",
        "RARFT_CORRECTION=contrastive",
        "RARFT_EXPLAIN=debiased",
    ]


@pytest.mark.parametrize("model, family", [("model", "qwen2_5_vl"), ("qwen3_vl", "qwen3_vl")])
def test_the_models_family_reaches_the_worker_environment(inputs, model, family):
    done = run_recipe(
        "qwen3_vl_8b.sh",
        RARFT_DRY_RUN="1",
        RARFT_MODEL=str(inputs[model]),
        RARFT_DATA=str(inputs["data"]["ra_rft"]),
        RARFT_OUTPUT=str(inputs["root"] / "out"),
    )
    assert done.returncode == 0, done.stderr
    assert f"RARFT_MODEL_FAMILY={family}" in shlex.split(done.stdout.strip().splitlines()[-1])


def test_data_built_for_the_other_reward_variant_is_refused(inputs):
    done = run_recipe(
        "time_r1.sh",
        RARFT_DRY_RUN="1",
        RARFT_MODEL=str(inputs["model"]),
        RARFT_DATA=str(inputs["data"]["ra_rft"]),
        RARFT_VARIANT="released",
    )
    assert done.returncode == 2
    assert "built with template 'ra_rft', expected 'ra_rft_released'" in done.stderr


def test_the_setup_lives_in_one_place():
    """Recipes set names and descriptions; only common.sh (and the smoke run's overrides) hold OpenRLHF flags."""
    for recipe in BASE_MODEL_RECIPES:
        text = (RECIPES / recipe).read_text()
        assert "--" not in text.replace("--help", "") and "source" in text


def _checkout_copy(tmp_path, with_venv):
    """recipes/ in a copy of the checkout whose .venv/bin/python only records how it was called."""
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(RECIPES, checkout / "recipes")
    calls = tmp_path / "calls.txt"
    if with_venv:
        python = checkout / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
        python.chmod(0o755)
    return checkout, calls


@pytest.mark.parametrize("python_set", [False, True])
def test_recipes_find_the_checkouts_python_without_activation(tmp_path, inputs, python_set):
    checkout, calls = _checkout_copy(tmp_path, with_venv=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RARFT_") and k != "PYTHON"}
    other = tmp_path / "other-python"
    other.write_text(f'#!/bin/sh\necho "other $@" >> {calls}\n')
    other.chmod(0o755)
    env = {
        **clean,
        "RARFT_MODEL": str(inputs["model"]),
        "RARFT_DATA": str(inputs["data"]["ra_rft"]),
        **({"PYTHON": str(other)} if python_set else {}),
    }
    done = subprocess.run(
        ["bash", str(checkout / "recipes" / "time_r1.sh")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    *estimate, call = calls.read_text().splitlines()  # the memory estimate of the hybrid engine, then the launch
    assert call.startswith("other -m rarft_plugin.train" if python_set else "-m rarft_plugin.train --actor.")
    assert [line.startswith("other -m rarft_plugin.launch.memory") for line in estimate] == [python_set]


def test_makefile_honours_venv():
    def planned(*args, **env):
        done = subprocess.run(
            ["make", "-n", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "VENV=/opt/v1 bash scripts/setup_env.sh" in planned("test", "VENV=/opt/v1")
    assert "/opt/v1/bin/python -m pytest" in planned("test", "VENV=/opt/v1")
    assert "/opt/v2/bin/rarft-demo" in planned("demo", VENV="/opt/v2")
    assert ".venv/bin/python -m pytest" in planned("test", VENV="")  # default when unset or empty
