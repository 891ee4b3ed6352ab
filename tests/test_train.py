"""rarft-train: plugin wiring, checks before Ray, the upstream workarounds, and the run through OpenRLHF's module."""

import json
import os
import shlex
import sys
import types

import pytest
from support.import_stand_ins import install_import_stand_ins
from support.recipe_argv import recipe_argv

from rarft_plugin.launch.checks import Placement, placement_problems, validate_dataset, validate_model, validate_sbert
from rarft_plugin.launch.upstream import WORKER_SETUP_HOOK as HOOK
from rarft_plugin.launch.upstream import openrlhf_arguments, with_worker_env
from rarft_plugin.launch.wiring import VIDEO_CONTRACT, drop_plugin_flag, dynamic_filtering, wire_plugin
from rarft_plugin.paths import plugin_path
from rarft_plugin.prompt_row import make_row
from rarft_plugin.reward_options import RewardOptions
from rarft_plugin.schema import parse_label
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.train import main
from rarft_plugin.video import VideoSpec

install_import_stand_ins()  # OpenRLHF's train_ppo_ray imports vllm and flash_attn at module load

AGENT = str(plugin_path("agent"))
CONTRACT = [
    "--train.agent_func_path",
    AGENT,
    "--data.input_key",
    "input",
    "--data.label_key",
    "label",
    "--data.image_key",
    "video",
    "--data.apply_chat_template",
    "--data.max_images_per_prompt",
    "0",
]
RELEVANT = {
    "relevant": True,
    "timestamp": [1.0, 3.0],
    "duration": 6.0,
    "query": "the bar moves right",
    "answer_time": "1.00 to 3.00",
    "answer_refusal": "",
    "query_relevant": "the bar moves right",
}
IRRELEVANT = {
    "relevant": False,
    "timestamp": None,
    "duration": 6.0,
    "query": "a dog barks",
    "answer_refusal": "There is no dog.",
    "query_relevant": "the bar moves right",
}


@pytest.fixture(scope="module")
def openrlhf_parser():
    parser, _ = openrlhf_arguments(["--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "2"])
    return parser


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=6)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    (directory / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "vision_config": {}}))
    return directory


def prompt_row(label, video, template="ra_rft"):
    return make_row(
        parse_label(label), VideoSpec(str(video), 0.0, 6.0), template=template, datasource="test", row_id=label["query"]
    )


def write_rows(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------- the plugin's legacy spelling


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--reward_pretrain", "rarft_plugin", "--train.seed", "1"], ["--train.seed", "1"]),
        (["--reward_pretrain=rarft_plugin"], []),
        (["--reward.model_name_or_path", "rarft_plugin"], []),
        (["--reward_pretrain", "/rm"], ["--reward_pretrain", "/rm"]),  # not the plugin: refused by wire_plugin
        (
            ["--actor.model_name_or_path", "/m", "--reward.clip_range", "-5", "5"],
            ["--actor.model_name_or_path", "/m", "--reward.clip_range", "-5", "5"],
        ),
    ],
)
def test_the_plugin_spelling_is_dropped_and_everything_else_kept(argv, expected):
    assert drop_plugin_flag(argv)[0] == expected


@pytest.mark.parametrize(
    "argv, notices",
    [
        (["--reward_pretrain", "rarft_plugin", "--reward_pretrain", "rarft_plugin"], 1),
        (["--actor.model_name_or_path", "/m"], 0),
    ],
)
def test_one_notice_per_plugin_flag(argv, notices):
    assert len(drop_plugin_flag(argv)[1]) == notices


def test_the_plugin_spelling_names_the_real_flags_in_one_line():
    (notice,) = drop_plugin_flag(["--reward_pretrain", "rarft_plugin"])[1]
    assert "\n" not in notice and all(flag in notice for flag in VIDEO_CONTRACT)


@pytest.mark.parametrize("legacy", ["--pretrain", "--prompt_data", "--micro_train_batch_size"])
def test_other_openrlhf_0_9_spellings_are_openrlhfs_to_refuse(legacy, openrlhf_parser):
    """The 0.9 flag table is gone: such flags pass through, and OpenRLHF 0.11's parser does not know them."""
    assert drop_plugin_flag([legacy, "1"])[0] == [legacy, "1"]
    assert legacy not in openrlhf_parser._option_string_actions


# ---------------------------------------------------------------- plugin wiring


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--algo.advantage.estimator", "group_norm"], ["--algo.advantage.estimator", "group_norm", *CONTRACT]),
        (
            ["--algo.advantage.estimator", "group_norm", "--data.label_key", "label", "--data.apply_chat_template"],
            ["--algo.advantage.estimator", "group_norm", *CONTRACT],
        ),
        (["--data.image_key=video", "--algo.advantage.estimator=rloo"], ["--algo.advantage.estimator=rloo", *CONTRACT]),
    ],
)
def test_the_video_contract_is_appended_once(argv, expected):
    wired, problems = wire_plugin(argv)
    assert (wired, problems) == (expected, [])


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--data.label_key", "answer"], "--data.label_key answer: rarft-train sets --data.label_key label"),
        (
            ["--data.max_images_per_prompt", "1"],
            "--data.max_images_per_prompt 1: rarft-train sets --data.max_images_per_prompt 0",
        ),
        (["--train.agent_func_path", "/other/agent.py"], "--train.agent_func_path /other/agent.py"),
        (["--reward.remote_url", "http://rm"], "--reward.remote_url: not with rarft-train"),
        (["--reward.model_name_or_path", "/rm"], "--reward.model_name_or_path: not with rarft-train"),
        (["--ds.packing_samples"], "--ds.packing_samples: not with rarft-train"),
        (["--reward_pretrain", "/rm"], "--reward_pretrain: not with rarft-train"),
    ],
)
def test_conflicts_with_the_plugin_are_problems(argv, problem):
    problems = wire_plugin([*argv, "--algo.advantage.estimator", "group_norm"])[1]
    assert len(problems) == 1 and problems[0].startswith(problem)


@pytest.mark.parametrize("argv", [[], ["--algo.advantage.estimator", "gae"], ["--advantage_estimator", "group_norm"]])
def test_a_critic_estimator_is_a_problem(argv):
    assert any("trains without a critic" in p for p in wire_plugin(argv)[1])


FILTER = ["--algo.dynamic_filtering_enable", "--rollout.n_samples_per_prompt", "8"]


@pytest.mark.parametrize(
    "argv, problem, kept",
    [
        ([], None, None),  # filtering off: nothing to say
        (FILTER, None, "a group of 8 is kept when 1 to 7 of its rollouts score 1"),  # the default range 0 1
        ([*FILTER, "--algo.dynamic_filtering_range", "0.2", "0.9"], None, "when 2 to 7 of its rollouts"),
        ([*FILTER, "--algo.dynamic_filtering_range", "0", "5"], None, "groups where all of the rollouts score 1 pass"),
        ([*FILTER, "--algo.dynamic_filtering_range", "-0.5", "0.5"], None, "groups where none of the rollouts"),
        ([*FILTER, "--algo.dynamic_filtering_range", "0.3", "0.37"], "keeps no group", None),  # no k/8 inside
        ([*FILTER, "--algo.dynamic_filtering_range", "1", "5"], "keeps no group", None),  # the total reward's scale
        ([*FILTER, "--algo.dynamic_filtering_range", "-1", "5"], "keeps every group, so it filters nothing", None),
        ([*FILTER, "--algo.dynamic_filtering_range", "low", "high"], None, None),  # OpenRLHF's parser refuses it
    ],
)
def test_dynamic_filtering_is_read_against_the_binary_score(argv, problem, kept):
    problems, notices = dynamic_filtering(argv)
    assert [problem in p for p in problems] == ([True] if problem else [])
    assert [kept in n for n in notices] == ([True] if kept else [])
    if problems or notices:
        assert "RA-IoU >= 0.5" in (problems + notices)[0]


def test_the_launcher_refuses_a_filtering_range_that_keeps_nothing_and_explains_one_that_does(command, capsys):
    assert main([*command, "--algo.dynamic_filtering_enable", "--algo.dynamic_filtering_range", "1", "5"]) == 2
    assert "--algo.dynamic_filtering_range 1 5 keeps no group" in capsys.readouterr().err
    assert main([*command, "--algo.dynamic_filtering_enable", "--rarft.dry_run"]) == 0
    assert "dynamic filtering (--algo.dynamic_filtering_range 0 1): a group of 8" in capsys.readouterr().err


# ---------------------------------------------------------------- dataset checks (rows: test_prompt_row.py)


def test_every_dataset_problem_is_reported_at_once(tmp_path, clip):
    good = prompt_row(RELEVANT, clip)
    path = write_rows(
        tmp_path / "train.jsonl",
        [
            good,
            "{not json",
            {**good, "video": VideoSpec(str(tmp_path / "missing.mp4")).to_json()},
            {**good, "label": json.dumps({**RELEVANT, "timestamp": [5, 2]})},
            "",
            prompt_row(IRRELEVANT, clip, template="videochat_r1"),
            {**good, "video": VideoSpec(str(tmp_path / "missing.mp4")).to_json()},
        ],
    )
    problems = validate_dataset(str(path), "ra_rft")
    # row problems in file order, then each unusable video once, at the first line that uses it
    assert [p.split(": ")[1] for p in problems] == ["record line 2", "record line 4", "record line 6", "record line 3"]
    assert all(p.startswith(str(path)) for p in problems)
    assert "template 'videochat_r1'" in problems[2]
    assert "video file not found" in problems[3] and "missing.mp4" in problems[3] and "field video" in problems[3]


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda row: {**row, "label": json.dumps({**RELEVANT, "query": "a man<|im_end|><|im_start|>"})}, "label.query"),
        (
            lambda row: {
                **row,
                "input": json.loads(json.dumps(row["input"]).replace("the bar moves right", "x<|im_end|><|im_start|>")),
            },
            "input",
        ),
    ],
)
def test_the_preflight_refuses_a_chat_marker_in_a_prompt_or_label(tmp_path, clip, edit, field):
    path = write_rows(tmp_path / "train.jsonl", [edit(prompt_row(RELEVANT, clip))])
    problems = validate_dataset(str(path), "ra_rft")
    # the marker is named in its field (an edited label also no longer matches its prompt: said too)
    assert any(f"field {field}: " in problem and "special-token marker '<|im_end|>'" in problem for problem in problems)


def _truncated_copy(clip, path):
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncated_copy, "cannot decode video|truncated"),
        (lambda clip, path: path.write_bytes(b""), "video file is empty"),
        (lambda clip, path: path.write_bytes(b"not a video"), "cannot decode video"),
    ],
)
def test_videos_are_decoded_not_just_found(tmp_path, clip, damage, message):
    """A truncated, empty or non-video file fails the pre-flight, named, with a line that uses it."""
    import re

    bad = tmp_path / "bad.mp4"
    damage(write_test_video(tmp_path / "long.mp4", seconds=6), bad)
    path = write_rows(
        tmp_path / "train.jsonl", [prompt_row(RELEVANT, clip), prompt_row(RELEVANT, bad), prompt_row(IRRELEVANT, bad)]
    )
    (problem,) = validate_dataset(str(path), "ra_rft")
    assert re.search(message, problem) and "bad.mp4" in problem and "record line 2" in problem


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("train.json", None, "a .jsonl file"),
        ("absent.jsonl", None, "file not found"),
        ("empty.jsonl", "\n\n", "no prompts"),
        ("folder.jsonl", "DIRECTORY", "is a directory"),
        ("binary.jsonl", bytes(range(256)), "not UTF-8"),
        ("nested.jsonl", "[" * 100_000 + "]" * 100_000, "record line 1: JSON nested too deeply"),
        ("surrogate.jsonl", '{"input": "\\ud800"}', "record line 1: field input: holds a lone surrogate"),
    ],
)
def test_dataset_files_that_cannot_be_used(tmp_path, name, content, problem):
    if content == "DIRECTORY":
        (tmp_path / name).mkdir()
    elif isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content is not None:
        (tmp_path / name).write_text(content)
    (found,) = validate_dataset(str(tmp_path / name), "ra_rft")
    assert problem in found


@pytest.mark.parametrize(
    "label, training, problem",
    [
        ({**RELEVANT, "timestamp": [500, 900], "duration": 27}, True, "field label.timestamp: span [500, 900] ends"),
        ({**RELEVANT, "timestamp": [1, 6.4]}, True, None),  # within the half second of rounding
        ({**RELEVANT, "timestamp": [1e300, 1e301]}, True, "field label.timestamp: must end by 604800 seconds"),
        ({**RELEVANT, "timestamp": [5, 9]}, False, None),  # an evaluation set keeps the released files' defects
        ({**IRRELEVANT, "query": "a dog \ud800 barks"}, False, "field label.query: holds a lone surrogate"),
        ({**IRRELEVANT, "query_relevant": "\udfff"}, True, "field label.query_relevant: holds a lone surrogate"),
    ],
)
def test_labels_no_rollout_could_use_are_refused_up_front(tmp_path, clip, label, training, problem):
    """One span rule everywhere (`rarft_plugin.schema.span_problem`), and text a tokenizer takes: refused by
    the pre-flight rather than failing or misleading every rollout later."""
    row = prompt_row(RELEVANT, clip)
    row["label"] = json.dumps(label)  # as a hand-made or older file holds it (json escapes the surrogate)
    path = write_rows(tmp_path / "train.jsonl", [prompt_row(RELEVANT, clip), row])
    problems = validate_dataset(str(path), "ra_rft", training=training)
    if problem is None:
        assert problems == []
    else:  # (a changed query also leaves the prompt built from another query: a problem of its own)
        assert all(p.startswith(f"{path}: record line 2: ") for p in problems)
        assert any(problem in p for p in problems), problems


# ---------------------------------------------------------------- prompt length (video tokens counted, not decoded)


def prompt_tokens(model, row):
    """The expanded prompt's length as the executor's processor call makes it (decoding the clip)."""
    from transformers import AutoProcessor

    from rarft_plugin.openrlhf_agent import prepare_video_prompt

    processor = AutoProcessor.from_pretrained(model)
    prompt = processor.apply_chat_template(row["input"], tokenize=False, add_generation_prompt=True)
    return len(prepare_video_prompt(processor, prompt, row["video"], cache=False)[1])


@pytest.mark.parametrize(
    ("room", "new", "refused"), [(0, 200, False), (-1, 200, True), (0, None, False), (-1, None, True)]
)
def test_prompts_over_max_len_are_refused_with_the_count_and_the_flag(
    tmp_path, clip, family, tiny_models, room, new, refused
):
    from rarft_plugin.launch.checks import length_limit

    tiny_model = tiny_models(family.NAME)

    long_clip = write_test_video(tmp_path / "long.mp4", seconds=30, size=(320, 240))
    rows = [prompt_row(RELEVANT, clip), {**prompt_row(IRRELEVANT, clip), "video": VideoSpec(str(long_clip)).to_json()}]
    path = write_rows(tmp_path / "train.jsonl", rows)
    longest = prompt_tokens(tiny_model, rows[1])  # the 30-s clip's prompt
    assert longest > prompt_tokens(tiny_model, rows[0])
    max_len = longest + (new or 1) + room
    argv = ["--actor.model_name_or_path", str(tiny_model), "--data.max_len", str(max_len)]
    limit = length_limit(argv + (["--rollout.max_new_tokens", str(new)] if new else []))
    problems = validate_dataset(str(path), "ra_rft", limit=limit)
    if not refused:
        assert problems == []
        return
    (problem,) = problems
    assert f"1 of 2 prompts do not fit --data.max_len {max_len}" in problem and "record line 2" in problem
    assert f"is {longest} tokens" in problem and f"raise --data.max_len to {longest + (new or 1)}" in problem
    assert "long.mp4" in problem


def test_the_length_check_waits_for_a_model_whose_processor_loads(model_dir):
    from rarft_plugin.launch.checks import length_limit

    assert length_limit(["--actor.model_name_or_path", str(model_dir)]) is None  # validate_model says why
    assert length_limit(["--data.max_len", "4608"]) is None
    assert length_limit(["--actor.model_name_or_path", str(model_dir), "--data.max_len", "long"]) is None


# ---------------------------------------------------------------- model and SentenceBERT checks


@pytest.mark.parametrize(
    "case, allow_hub, problem",
    [
        ("good", False, None),
        (None, False, "no model"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", False, "--rarft.allow_hub_models"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", True, None),
        ("/nowhere/model", True, "not a local directory"),
        ("no config", False, "no config.json"),
        ("bad config", False, "not valid JSON"),
        ("text model", False, "model_type 'qwen2' has no vision_config"),
        ("llava", False, "model_type 'llava' has no rarft model family (supported: qwen2_5_vl (model_type qwen2_5_vl)"),
    ],
)
def test_model_checks(case, allow_hub, problem, tmp_path, model_dir):
    directories = {"good": model_dir, "no config": tmp_path}
    if case == "bad config":
        (tmp_path / "config.json").write_text("{")
        directories[case] = tmp_path
    if case == "text model":
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
        directories[case] = tmp_path
    if case == "llava":  # a vision-language model rarft cannot feed video: refused before Ray starts
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava", "vision_config": {}}))
        directories[case] = tmp_path
    name = str(directories[case]) if case in directories else case
    found = validate_model(name, allow_hub)
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0])


@pytest.mark.parametrize(
    "model, device, allow_hub, problem",
    [
        (None, None, False, None),
        (None, "cuda:1", False, None),
        (None, "gpu0", False, "--rarft.sbert_device gpu0"),
        ("/nowhere/sbert", None, False, "not found"),
        ("sentence-transformers/all-mpnet-base-v2", None, False, "--rarft.allow_hub_models"),
        ("sentence-transformers/all-mpnet-base-v2", None, True, None),
        ("empty dir", None, False, "cannot load it"),
    ],
)
def test_sbert_checks(model, device, allow_hub, problem, tmp_path, monkeypatch):
    monkeypatch.delenv("RARFT_SBERT_MODEL", raising=False)
    if model == "empty dir":
        model = str(tmp_path)
    found = validate_sbert(model, device, allow_hub)
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0])


# ---------------------------------------------------------------- worker environment


@pytest.mark.parametrize(
    "runtime_env, env, expected",
    [
        (None, {"RARFT_VARIANT": "paper"}, {"env_vars": {"RARFT_VARIANT": "paper"}, "worker_process_setup_hook": HOOK}),
        (
            {"env_vars": {"NCCL_DEBUG": "WARN"}},
            {"RARFT_VARIANT": "released"},
            {"env_vars": {"NCCL_DEBUG": "WARN", "RARFT_VARIANT": "released"}, "worker_process_setup_hook": HOOK},
        ),
        (
            {"env_vars": {"RARFT_VARIANT": "paper"}, "pip": ["x"]},
            {"RARFT_VARIANT": "released"},
            {"env_vars": {"RARFT_VARIANT": "released"}, "pip": ["x"], "worker_process_setup_hook": HOOK},
        ),
        ({"worker_process_setup_hook": "mine.setup"}, {}, {"env_vars": {}, "worker_process_setup_hook": "mine.setup"}),
    ],
)
def test_worker_variables_join_the_runtime_env(runtime_env, env, expected):
    before = json.dumps(runtime_env)
    assert with_worker_env(runtime_env, env) == expected
    assert json.dumps(runtime_env) == before


# ---------------------------------------------------------------- placement on the GPUs (checks.placement_problems)

# The recipes' hybrid engine on 4 GPUs, the paper's batch: each row changes it (None: a switch, False: left out).
HYBRID_4 = {
    "--actor.num_gpus_per_node": "4",
    "--ref.num_gpus_per_node": "4",
    "--vllm.num_engines": "4",
    "--train.colocate_all": None,
    "--rollout.batch_size": "16",
    "--rollout.n_samples_per_prompt": "8",
    "--train.batch_size": "128",
    "--algo.kl.init_coef": "0.04",
}
SEPARATE_4 = {  # vLLM alone on 2 GPUs, actor and reference sharing the other 2 (RARFT_VLLM_GPUS=2)
    "--train.colocate_all": False,
    "--train.colocate_actor_ref": None,
    "--actor.num_gpus_per_node": "2",
    "--ref.num_gpus_per_node": "2",
    "--vllm.num_engines": "2",
}
UNEVEN = {"--rollout.batch_size": "3", "--rollout.n_samples_per_prompt": "2"}  # 6 samples over 4 ranks


def flags_of(changes: dict) -> list[str]:
    tokens = []
    for flag, value in {**HYBRID_4, **changes}.items():
        tokens += [] if value is False else [flag] if value is None else [flag, value]
    return tokens


@pytest.mark.parametrize(
    "changes, gpus, expected",
    [
        ({}, 4, []),
        ({"--vllm.num_engines": "2", "--vllm.tensor_parallel_size": "2"}, 4, []),  # engines of 2 GPUs
        (SEPARATE_4, 4, []),
        ({"--actor.num_nodes": "2", "--ref.num_nodes": "2", "--vllm.num_engines": "8"}, 4, []),  # Ray places nodes
        ({"--ds.ring_attn_size": "2", "--train.batch_size": "64"}, 4, []),  # 2 ranks share a replica: 2 replicas
        ({"--train.async_enable": None, "--vllm.num_engines": "2"}, 8, []),  # async: engines beside the actor's 4
        ({"--ref.num_gpus_per_node": "2", "--algo.kl.init_coef": "0"}, 4, []),  # no KL: no reference at all
        ({"--train.batch_size": "many"}, 4, []),  # OpenRLHF's parser names the flag
        ({"--vllm.num_engines": False}, 4, ["--vllm.num_engines (unset): rarft's video executor"]),
        ({"--vllm.num_engines": "0"}, 4, ["--vllm.num_engines (unset): rarft's video executor"]),
        (
            {"--vllm.num_engines": "2"},
            4,
            [
                "--vllm.num_engines 2 x --vllm.tensor_parallel_size 1 = 2 vLLM GPUs, but --train.colocate_all puts the "
                "engines on the actor's 4 GPUs (--actor.num_nodes x --actor.num_gpus_per_node), one engine GPU each: "
                "use --vllm.num_engines 4"
            ],
        ),
        (
            {"--vllm.num_engines": "1", "--vllm.tensor_parallel_size": "3"},
            4,
            [
                "= 3 vLLM GPUs, but --train.colocate_all puts the engines on the actor's 4 GPUs (--actor.num_nodes x "
                "--actor.num_gpus_per_node), one engine GPU each: use a --vllm.tensor_parallel_size that divides 4"
            ],
        ),
        (
            {"--ref.num_gpus_per_node": "2"},
            4,
            ["--ref.num_gpus_per_node 2 (--ref.num_nodes 1) differs from the actor's 4 (1): colocated"],
        ),
        ({**SEPARATE_4, "--ref.num_gpus_per_node": "1"}, 4, ["--ref.num_gpus_per_node 1 (--ref.num_nodes 1) differs"]),
        (
            {"--train.batch_size": "90"},
            4,
            [
                "--train.batch_size 90 is not a multiple of --train.micro_batch_size 1 x the actor and reference's 4 "
                "data-parallel ranks: DeepSpeed refuses it at start-up"
            ],
        ),
        ({"--train.batch_size": "2"}, 4, ["--train.batch_size 2 is not a multiple"]),  # no accumulation step at all
        (
            {"--train.micro_batch_size": "3"},
            4,
            ["--train.batch_size 128 is not a multiple of --train.micro_batch_size 3"],
        ),
        (
            UNEVEN,
            4,
            [
                "--rollout.batch_size 3 x --rollout.n_samples_per_prompt 2 = 6 samples a step, 6 micro-batches of "
                "--rollout.micro_batch_size 1, do not divide over the actor and reference's 4 data-parallel ranks: "
                "OpenRLHF gives each rank 2 and the last ones fewer or none"
            ],
        ),
        (
            {"--rollout.micro_batch_size": "3"},
            4,
            ["128 samples a step, 43 micro-batches of --rollout.micro_batch_size 3"],
        ),
        (
            {"--ds.ring_attn_size": "2", **UNEVEN, "--rollout.n_samples_per_prompt": "3"},
            4,
            ["over the actor and reference's 2"],
        ),
        (
            {**UNEVEN, "--train.batch_size": "90", "--train.dynamic_batch_enable": None},
            4,
            ["--train.batch_size 90 is not a multiple of --train.micro_batch_size 1 x the reference's 4"],
        ),  # dynamic batches: balanced over the ranks, no DeepSpeed batch for the actor; the reference keeps one
        (
            {"--ref.num_gpus_per_node": "2", "--train.colocate_all": False, "--vllm.num_engines": "1"},
            8,
            [],
        ),  # not colocated: the reference's own 2 GPUs, 4 + 2 + 1 of 8
        (
            SEPARATE_4,
            3,
            [
                "the layout needs 4 GPUs on this node (actor 2 (--actor.num_gpus_per_node) + vLLM 2 x 1 "
                "(--vllm.num_engines x --vllm.tensor_parallel_size)) and 3 are visible: Ray would wait"
            ],
        ),
        (
            {**SEPARATE_4, "--train.colocate_actor_ref": False},
            4,
            [
                "needs 6 GPUs on this node (actor 2 (--actor.num_gpus_per_node) + reference 2 "
                "(--ref.num_gpus_per_node) + vLLM 2 x 1"
            ],
        ),
        ({**SEPARATE_4, "--train.colocate_actor_ref": False}, None, []),  # GPUs unknown (a Ray cluster): left to Ray
    ],
)
def test_an_impossible_layout_or_batch_is_named_by_its_flag(changes, gpus, expected):
    problems = placement_problems(flags_of(changes), gpus)
    assert len(problems) == len(expected), problems
    assert all(part in problem for part, problem in zip(expected, problems, strict=True)), problems


def test_the_placements_defaults_are_openrlhfs(openrlhf_parser):
    default = openrlhf_parser.get_default
    assert Placement.of([]) == Placement(
        actor_nodes=default("actor.num_nodes"),
        actor_gpus=default("actor.num_gpus_per_node"),
        ref_nodes=default("ref.num_nodes"),
        ref_gpus=default("ref.num_gpus_per_node"),
        engines=default("vllm.num_engines") or 0,
        vllm_tp=default("vllm.tensor_parallel_size"),
        colocate_all=default("train.colocate_all"),
        colocate_actor_ref=default("train.colocate_actor_ref"),
        async_train=default("train.async_enable"),
        reference=default("algo.kl.init_coef") > 0,
        rollout_batch=default("rollout.batch_size"),
        samples_per_prompt=default("rollout.n_samples_per_prompt"),
        rollout_micro=default("rollout.micro_batch_size"),
        train_batch=default("train.batch_size"),
        train_micro=default("train.micro_batch_size"),
        ring=default("ds.ring_attn_size"),
        ds_tp=default("ds.tensor_parallel_size"),
        dynamic_batch=default("train.dynamic_batch_enable"),
    )


def test_the_launcher_refuses_an_impossible_layout_before_ray_in_one_line(command, capsys):
    assert main([*command, "--train.colocate_all", "--vllm.num_engines", "2", "--rarft.dry_run"]) == 2
    captured = capsys.readouterr()
    named = [line for line in captured.err.splitlines() if "--vllm.num_engines 2 x" in line]
    assert len(named) == 1 and "use --vllm.num_engines 1" in named[0] and captured.out == ""


# Where each model of train_ppo_ray goes on 2 GPUs, per layout of the recipes: rank -> GPU index (engines: engine i).
RAY_LAYOUTS = {
    # hybrid engine: actor rank r, reference rank r and engine r share GPU r
    "hybrid": ({"RARFT_NUM_GPUS": "2"}, {"actor": [0, 1], "reference": [0, 1], "engine": [0, 1]}),
    # vLLM alone on the second GPU, actor and reference share the first
    "separate": ({"RARFT_NUM_GPUS": "2", "RARFT_VLLM_GPUS": "1"}, {"actor": [0], "reference": [0], "engine": [1]}),
}


@pytest.mark.parametrize("layout", RAY_LAYOUTS)
def test_every_ray_worker_of_openrlhfs_own_placement_runs_the_setup_hook(monkeypatch, restored_environ, layout):
    """rarft-train's run (`run_openrlhf`) of a recipe's 2-GPU command on a local Ray cluster that declares 2 GPUs (none
    is needed): train_ppo_ray's own `train()` makes its placement groups, `RayActorGroup`s and `create_vllm_engines`,
    with probes in place of the models and a trainer that keeps the groups in this process. Every Ray worker process
    it starts (actor and reference ranks, vLLM engines, the trainer's stand-in) got the reward options and ran rarft's
    setup hook: the reference video positions and the grouped vision windows installed, the trainer's logs patched
    once its module is imported.
    The ranks sit on the GPUs the layout says."""
    import openrlhf.utils
    import ray
    from openrlhf.trainer import ppo_trainer
    from openrlhf.trainer.ray import launcher, ppo_actor, vllm_engine

    from rarft_plugin.launch.run import run_openrlhf
    from rarft_plugin.launch.wiring import wire

    class Probe:  # defined here, so that Ray ships it by value to workers that cannot import this test module
        def __init__(self, *args, **kwargs):
            pass

        def report(self):
            from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

            from rarft_plugin.launch.upstream import trainer_patch_pending
            from rarft_plugin.models import family_named

            return {
                "pid": os.getpid(),
                "gpus": [int(gpu) for gpu in ray.get_gpu_ids()],
                "variant": os.environ.get("RARFT_VARIANT"),
                "positions": family_named("qwen2_5_vl").rope_index_matches_reference(),
                "windows": getattr(Qwen2_5_VLVisionAttention.forward, "rarft_grouped", False),
                "trainer_patch": trainer_patch_pending(),
            }

        def get_master_addr_port(self):  # RayActorGroup's rank 0
            return "127.0.0.1", 0

        def init_model_from_pretrained(self, *args, **kwargs):
            pass

        def save_model(self):
            pass

        def sleep(self, *args, **kwargs):  # vLLM's sleep mode, called at start
            pass

    started = {}

    class Trainer:  # what train() starts as PPOTrainer.remote(...): it keeps the groups here for the test to ask
        def __init__(self, pretrain, strategy, actor, critic, reward, reference, engines, **generate):
            started.update(actor=actor._actor_handlers, reference=reference._actor_handlers, engine=engines)
            started["trainer"] = [ray.remote(Probe).remote()]
            self.get_max_steps = types.SimpleNamespace(remote=lambda: ray.put(1))
            self.fit = types.SimpleNamespace(remote=lambda: started["trainer"][0].report.remote())

    monkeypatch.setattr(ppo_actor, "PolicyModelActor", ray.remote(Probe))
    monkeypatch.setattr(launcher, "ReferenceModelActor", ray.remote(Probe))
    monkeypatch.setattr(vllm_engine, "RolloutRayActor", ray.remote(Probe))
    monkeypatch.setattr(ppo_trainer, "PPOTrainer", types.SimpleNamespace(remote=Trainer))
    # DeepSpeed's strategy would make every worker import OpenRLHF's models (flash-attn, not installed here)
    monkeypatch.setattr(openrlhf.utils, "get_strategy", lambda args: types.SimpleNamespace(print=lambda *_: None))
    init = ray.init
    monkeypatch.setattr(ray, "init", lambda **kw: init(num_cpus=3, num_gpus=2, include_dashboard=False, **kw))
    monkeypatch.delenv("RARFT_VARIANT", raising=False)

    env, gpus = RAY_LAYOUTS[layout]
    launch = wire([*recipe_argv("single_gpu_smoke.sh", **env), "--rarft.variant", "released"])
    assert placement_problems(launch.argv, 2) == []
    try:
        run_openrlhf(launch.argv, launch.env)
        reports = {role: ray.get([handle.report.remote() for handle in handles]) for role, handles in started.items()}
    finally:
        ray.shutdown()
    everyone = [report for role in reports.values() for report in role]
    assert len({report["pid"] for report in everyone}) == len(everyone) == sum(map(len, gpus.values())) + 1
    assert os.getpid() not in {report["pid"] for report in everyone}
    assert all(
        (r["variant"], r["positions"], r["windows"], r["trainer_patch"]) == ("released", True, True, True)
        for r in everyone
    )
    assert {role: [r["gpus"] for r in reports[role]] for role in gpus} == {
        role: [[gpu] for gpu in on] for role, on in gpus.items()
    }


# ---------------------------------------------------------------- the whole launcher


@pytest.fixture
def restored_environ():
    """A launch in this process exports the reward options (run_openrlhf): put the environment back after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def command(tmp_path, clip, model_dir, monkeypatch, restored_environ):
    for name in (
        "RARFT_VARIANT",
        "RARFT_CORRECTION",
        "RARFT_REWARD_WEIGHTS",
        "RARFT_SBERT_MODEL",
        "RARFT_SBERT_DEVICE",
        "RARFT_DRY_RUN",
    ):
        monkeypatch.delenv(name, raising=False)
    data = write_rows(tmp_path / "train.jsonl", [prompt_row(RELEVANT, clip), prompt_row(IRRELEVANT, clip)])
    return [
        "--actor.model_name_or_path",
        str(model_dir),
        "--data.prompt_dataset",
        str(data),
        "--reward_pretrain",
        "rarft_plugin",
        "--algo.advantage.estimator",
        "group_norm",
        "--rollout.n_samples_per_prompt",
        "8",
        "--rollout.batch_size",
        "2",
        "--train.batch_size",
        "16",
        "--vllm.num_engines",
        "1",
        "--actor.num_gpus_per_node",
        "1",
        "--ref.num_gpus_per_node",
        "1",
    ]


class RayStarted(Exception):
    pass


def test_launch_runs_openrlhf_with_the_plugin_and_forwards_the_reward_options(command, monkeypatch, capsys):
    """main() up to the moment OpenRLHF's train() would start Ray: argv it saw, runtime env it passed."""
    import ray

    seen = {}

    def ray_init(*args, runtime_env=None, **kwargs):
        seen.update(argv=list(sys.argv[1:]), runtime_env=runtime_env)
        raise RayStarted

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", ray_init)
    with pytest.raises(RayStarted):
        main(
            [
                *command,
                "--rarft.variant",
                "released",
                "--rarft.reward_weights",
                "explain=0.5",
                "--rarft.template",
                "ra_rft",
            ]
        )
    assert seen["argv"][-len(CONTRACT) :] == CONTRACT
    assert seen["argv"][:2] == ["--actor.model_name_or_path", command[1]]
    env_vars = seen["runtime_env"]["env_vars"]
    assert env_vars["RARFT_VARIANT"] == "released"
    assert env_vars["RARFT_REWARD_WEIGHTS"] == RewardOptions(weights={"explain": 0.5}).to_env()["RARFT_REWARD_WEIGHTS"]
    assert env_vars["RARFT_MODEL_FAMILY"] == "qwen2_5_vl"  # the reward file reads responses with its markers
    assert {"NCCL_DEBUG", "TOKENIZERS_PARALLELISM"} <= set(env_vars)  # OpenRLHF's own are kept
    assert "--reward_pretrain rarft_plugin: the plugin is wired in as" in capsys.readouterr().err


# variable -> (value set or None, what reaches the Ray workers: a value, None, or the refusal's words)
WORKER_VARIABLES = {
    # the executors read it inside vLLM's Ray actors (`rarft_plugin.video.decode_pool`)
    "RARFT_DECODE_PROCESSES": [(None, None), (" 4", "4"), ("0", "0"), ("four", "RARFT_DECODE_PROCESSES must be")],
    # the trainer's Ray worker reads it (`rarft_plugin.launch.prefetch`)
    "RARFT_PREFETCH": [(None, None), ("0", "0"), ("Off", "0"), ("yes", "1"), ("later", "RARFT_PREFETCH must be")],
}


@pytest.mark.parametrize(
    ("name", "value", "forwarded"), [(name, *case) for name, cases in WORKER_VARIABLES.items() for case in cases]
)
def test_the_worker_variables_reach_the_workers_or_a_bad_value_is_refused(monkeypatch, name, value, forwarded):
    from rarft_plugin.launch.wiring import LaunchError, wire

    monkeypatch.delenv(name, raising=False)
    if value is not None:
        monkeypatch.setenv(name, value)
    if forwarded and not forwarded.isdigit():
        with pytest.raises(LaunchError, match=forwarded):
            wire(["--data.prompt_dataset", "train.jsonl"])
        return
    assert wire(["--data.prompt_dataset", "train.jsonl"]).env.get(name) == forwarded


def test_dry_run_checks_with_openrlhf_and_prints_the_command(command, capsys):
    assert main([*command, "--rarft.dry_run", "--rarft.sbert_device", "cuda"]) == 0
    out, err = capsys.readouterr()
    # each check said as it starts, then the list of what was checked, then the command
    started = [line.removeprefix("rarft-train: checking ") for line in err.splitlines() if "checking" in line]
    assert [what.split(" ")[1] for what in started] == ["placement", "dataset", "1", "policy", "SentenceBERT", "flag"]
    assert f"rarft-train: dry run: no problem in {len(started)} checks, nothing started:" in err
    assert err.rstrip().splitlines()[-len(started) :] == [f"  - {what}" for what in started]
    printed = out.strip().splitlines()[-1]
    tokens = shlex.split(printed)
    assert tokens[:3] == ["RARFT_VARIANT=paper", "RARFT_SBERT_DEVICE=cuda", "RARFT_CORRECTION=similarity"]
    module = tokens.index("openrlhf.cli.train_ppo_ray")
    _, args = openrlhf_arguments(tokens[module + 1 :])
    assert (args.train.agent_func_path, args.data.image_key, args.data.max_images_per_prompt) == (AGENT, "video", 0)
    assert args.reward.remote_url == ["agent"]  # OpenRLHF's own consequence of the executor


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--rollout.n_samples_per_prompt", "1"],
            "OpenRLHF refused the arguments: group_norm requires n_samples_per_prompt > 1",
        ),
        (["--rollout.batch_size", "many"], "OpenRLHF's parser rejected the command"),
        (["--rarft.varient", "paper"], "unknown option --rarft.varient"),
        (["--data.label_key", "answer"], "--data.label_key answer"),
        (["--rarft.sbert_model", "/nowhere"], "SentenceBERT model directory not found"),
    ],
)
def test_a_bad_command_starts_nothing_and_says_why(command, extra, message, capsys):
    assert main([*command, *extra, "--rarft.dry_run"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


@pytest.mark.parametrize(
    "flag, env, expected",
    [
        ([], {}, "similarity"),  # the paper's eq. 7, said explicitly so a stale worker variable cannot win
        (["--rarft.correction", "contrastive"], {}, "contrastive"),
        ([], {"RARFT_CORRECTION": "contrastive"}, "contrastive"),
        (["--rarft.correction", "similarity"], {"RARFT_CORRECTION": "contrastive"}, "similarity"),
    ],
)
def test_the_correction_option_reaches_the_workers(command, monkeypatch, capsys, flag, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([*command, *flag, "--rarft.dry_run"]) == 0
    tokens = shlex.split(capsys.readouterr().out.strip().splitlines()[-1])
    assert f"RARFT_CORRECTION={expected}" in tokens[: tokens.index("python")]


@pytest.mark.parametrize("name, value", [("RARFT_CORRECTION", "copyproof"), ("RARFT_VARIANT", "trl")])
def test_a_bad_reward_option_in_the_environment_is_named(command, monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    assert main([*command, "--rarft.dry_run"]) == 2
    assert f"{name}={value!r}: expected one of" in capsys.readouterr().err


def test_all_problems_are_listed_together(command, tmp_path, capsys):
    (tmp_path / "train.jsonl").write_text("{bad\n")
    argv = [token if token != command[1] else "/nowhere/model" for token in command]
    assert main([*argv, "--rarft.sbert_device", "gpu0", "--rarft.dry_run"]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "not valid JSON" in err and "/nowhere/model" in err and "gpu0" in err


# ---------------------------------------------------------------- without the GPU / training stack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fresh_python(code, *args, timeout=300):
    """`code` in a new interpreter: no stand-ins registered by this test session."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
    )


def test_openrlhf_parses_flags_on_a_cpu_machine_and_the_stand_ins_leave_no_trace():
    """In a process without vllm / flash_attn, OpenRLHF's own parser runs (unknown flags fail) and after
    it `import vllm` fails again as it should."""
    code = """
import importlib.util, sys
from rarft_plugin.launch.upstream import openrlhf_arguments
assert importlib.util.find_spec("vllm") is None, "this test needs a machine without vLLM"
_, args = openrlhf_arguments(["--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "2"])
print("parsed", args.rollout.n_samples_per_prompt)
print("left", sorted(n for n in sys.modules if n.split(".")[0] in ("vllm", "flash_attn", "openrlhf")
                     and n != "openrlhf" and not n.startswith("openrlhf.cli")))
try:
    import vllm
except ImportError:
    print("vllm absent again")
try:
    openrlhf_arguments(["--algo.advantage.estimator", "group_norm", "--no-such-flag", "3"])
except SystemExit as exit:
    print("refused", exit.code)
"""
    done = _fresh_python(code)
    if "this test needs a machine without vLLM" in done.stderr:
        pytest.skip("vLLM is installed here")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "parsed 2" in lines and "vllm absent again" in lines and "refused 2" in lines
    left = next(line for line in lines if line.startswith("left"))
    assert "vllm" not in left and "flash_attn" not in left and "openrlhf.trainer" not in left
    assert "unrecognized arguments: --no-such-flag 3" in done.stderr


def test_dry_run_refuses_an_unknown_flag_on_a_cpu_machine(command, tmp_path):
    done = _fresh_python(
        "import sys; from rarft_plugin.train import main; sys.exit(main(sys.argv[1:]))",
        *command,
        "--rarft.dry_run",
        "--no-such-flag",
        "3",
    )
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments: --no-such-flag 3" in done.stderr and done.stdout == ""


def test_a_launch_without_the_training_stack_says_what_to_install_in_one_line(command):
    from importlib.machinery import PathFinder  # looks at what is installed, not at this session's stand-ins

    if all(PathFinder.find_spec(name) for name in ("vllm", "flash_attn", "ray", "deepspeed", "openrlhf")):
        pytest.skip("the training stack is installed here")
    done = _fresh_python(
        "import sys; from rarft_plugin.train import main; sys.exit(main(sys.argv[1:]))", *command, timeout=60
    )
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("rarft-train: error: the training stack is not installed here (missing: ")
    assert 'pip install -e ".[train]"' in line and "vllm" in line


@pytest.mark.parametrize("missing", [["vllm"], ["ray", "deepspeed"]])
def test_the_stack_check_comes_before_any_slow_check(command, monkeypatch, capsys, missing):
    import importlib.util

    from rarft_plugin import train

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    monkeypatch.setattr(train, "prepare", lambda argv: pytest.fail("checks ran before the stack check"))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"missing: {', '.join(missing)}" in err


@pytest.mark.parametrize(
    "flags, present, refused",
    [
        ([], False, True),  # OpenRLHF's default is flash_attention_2
        (["--ds.attn_implementation", "flash_attention_2"], False, True),
        (["--ds.attn_implementation", "flash_attention_2"], True, False),
        (["--ds.attn_implementation", "sdpa"], False, False),
        (["--ds.attn_implementation", "eager"], False, False),
        (["--ds.attn_implementation", "sdpa", "--ds.packing_samples"], False, True),  # packing forces flash
        (["--ds.attn_implementation", "sdpa", "--ds.attn_implementation", "flash_attention_2"], False, True),
    ],
)
def test_flash_attention_without_its_cuda_extension_is_refused(flags, present, refused):
    from rarft_plugin.launch.checks import attention_problem

    asked = []
    problem = attention_problem(flags, findable=lambda name: asked.append(name) or present)
    assert (problem is not None) == refused
    if refused:
        assert asked == ["flash_attn_2_cuda"] and "--ds.attn_implementation sdpa" in problem


def test_the_attention_check_comes_before_any_slow_check(command, monkeypatch, capsys):
    """The stack found but flash-attn's extension not (a stub flash_attn): one line, exit 2, before the checks."""
    import importlib.util

    from rarft_plugin import train

    real = importlib.util.find_spec
    present = {"vllm", "ray", "deepspeed", "openrlhf", "flash_attn"}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in present else None if name == "flash_attn_2_cuda" else real(name, *a),
    )
    monkeypatch.setattr(train, "prepare", lambda argv: pytest.fail("checks ran before the attention check"))
    assert main([*command, "--ds.attn_implementation", "flash_attention_2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "flash_attn_2_cuda cannot be found here" in err and "nothing started" in err


def test_saved_checkpoints_get_the_base_models_processor(tmp_path, tiny_model):
    """OpenRLHF saves a VLM with its tokenizer only; rarft-train completes the folders so they load again."""
    import shutil

    from transformers import AutoProcessor

    from rarft_plugin.launch.run import saved_model_dirs
    from rarft_plugin.launch.upstream import complete_saved_processors

    base = tiny_model
    run = tmp_path / "run"
    final, step = run, run / "checkpoints" / "global_step2_hf"
    for directory in (final, step):  # what --ckpt.save_hf writes: config, weights, tokenizer, chat template
        directory.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy2(base / name, directory / name)
    (run / "checkpoints" / "_actor").mkdir()  # DeepSpeed states: not a model folder
    argv = ["--ckpt.output_dir", str(final), "--ckpt.path", str(run / "checkpoints")]
    assert saved_model_dirs(argv) == [final, step]
    with pytest.raises(OSError):  # no processor configuration
        AutoProcessor.from_pretrained(step)
    assert complete_saved_processors(str(base), saved_model_dirs(argv)) == [final, step]
    for directory in (final, step):
        assert AutoProcessor.from_pretrained(directory).video_processor is not None
    assert complete_saved_processors(str(base), saved_model_dirs(argv)) == []  # nothing left to add
