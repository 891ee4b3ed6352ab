"""RewardOptions: environment, command line, worker variables, and help texts built from the reward table."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

from rarft_plugin.reward_options import (
    OPTIONS,
    RewardOptions,
    add_arguments,
    reward_table,
    variables_help,
)
from rarft_plugin.rewards import REWARD_NAMES, REWARD_WEIGHTS, REWARDS, Reward

EXPLAIN_HALF = {**REWARD_WEIGHTS, "explain": 0.5}
# the variable's text: NAME=W for every reward, in the table's order
EXPLAIN_HALF_TEXT = ",".join(f"{name}={weight:g}" for name, weight in EXPLAIN_HALF.items())


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, RewardOptions()),
        (
            {"RARFT_VARIANT": "released", "RARFT_CORRECTION": "contrastive"},
            RewardOptions(variant="released", correction="contrastive"),
        ),
        (
            {"RARFT_CORRECTION": "gain", "RARFT_EXPLAIN": "debiased"},
            RewardOptions(correction="gain", explain="debiased"),
        ),
        ({"RARFT_REWARD_WEIGHTS": "explain=0.5"}, RewardOptions(weights=EXPLAIN_HALF)),
        (
            {"RARFT_SBERT_MODEL": "/m", "RARFT_SBERT_DEVICE": "cuda:1"},
            RewardOptions(sbert_model="/m", sbert_device="cuda:1"),
        ),
        (
            {"RARFT_VARIANT": "  released ", "RARFT_SBERT_DEVICE": "", "RARFT_CORRECTION": " "},
            RewardOptions(variant="released"),
        ),  # blank is unset, spaces are trimmed
        ({"RARFT_OTHER": "x", "VARIANT": "released"}, RewardOptions()),
    ],
)
def test_options_from_the_environment(environ, expected):
    assert RewardOptions.from_env(environ) == expected


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"RARFT_VARIANT": "trl"}, "RARFT_VARIANT='trl': expected one of ['paper', 'released']"),
        (
            {"RARFT_CORRECTION": "copyproof"},
            "RARFT_CORRECTION='copyproof': expected one of ['similarity', 'contrastive', 'gain']",
        ),
        ({"RARFT_EXPLAIN": "style"}, "RARFT_EXPLAIN='style': expected one of ['similarity', 'debiased']"),
        ({"RARFT_REWARD_WEIGHTS": "brevity=1"}, "RARFT_REWARD_WEIGHTS: unknown reward 'brevity'"),
        ({"RARFT_REWARD_WEIGHTS": "explain=nan"}, "RARFT_REWARD_WEIGHTS: weight of 'explain' must be finite"),
        ({"RARFT_REWARD_WEIGHTS": "explain"}, "RARFT_REWARD_WEIGHTS: weight 'explain' must look like name=value"),
    ],
)
def test_a_bad_variable_is_named(environ, message):
    with pytest.raises(ValueError) as raised:
        RewardOptions.from_env(environ)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "options, env",
    [
        (
            RewardOptions(),
            {"RARFT_VARIANT": "paper", "RARFT_CORRECTION": "similarity", "RARFT_EXPLAIN": "similarity"},
        ),
        (
            RewardOptions(
                variant="released",
                weights={"explain": 0.5},
                sbert_device="cuda",
                correction="contrastive",
                explain="debiased",
            ),
            {
                "RARFT_VARIANT": "released",
                "RARFT_REWARD_WEIGHTS": EXPLAIN_HALF_TEXT,
                "RARFT_SBERT_DEVICE": "cuda",
                "RARFT_CORRECTION": "contrastive",
                "RARFT_EXPLAIN": "debiased",
            },
        ),
        (
            RewardOptions(sbert_model="/models/mpnet"),
            {
                "RARFT_VARIANT": "paper",
                "RARFT_SBERT_MODEL": "/models/mpnet",
                "RARFT_CORRECTION": "similarity",
                "RARFT_EXPLAIN": "similarity",
            },
        ),
    ],
)
def test_worker_variables_reproduce_the_options(options, env):
    assert options.to_env() == env
    assert list(options.to_env()) == list(env)  # the order the launcher prints them in
    again = RewardOptions.from_env(options.to_env())
    assert again.to_env() == env and again.score_options(similarity=object())["weights"] == pytest.approx(
        options.score_options(similarity=object())["weights"]
    )


def test_score_options_are_the_keywords_of_score(sbert):
    from rarft_plugin.rewards import score

    options = RewardOptions(variant="released", weights={"explain": 0.5}).score_options(sbert)
    assert options == {
        "variant": "released",
        "correction": "similarity",
        "explain": "similarity",
        "weights": EXPLAIN_HALF,
        "similarity": sbert,
    }
    label = {"relevant": True, "timestamp": [1, 2], "duration": 10, "query": "q"}
    released = "<think>x</think> <answer>1 to 2</answer> <correction>NIL</correction>"
    assert score(released, label, **options)["total"] == 3  # format 1 + IoU 1 + explain 0 + NIL 1


def parse(style, argv, environ, environment=True):
    parser = argparse.ArgumentParser()
    add_arguments(parser, style, environment=environment)
    return RewardOptions.from_args(parser.parse_args(argv), environ)


@pytest.mark.parametrize(
    "style, argv, environ, expected",
    [
        ("launcher", [], {}, RewardOptions()),
        ("launcher", [], {"RARFT_VARIANT": "released"}, RewardOptions(variant="released")),
        ("launcher", ["--rarft.variant", "paper"], {"RARFT_VARIANT": "released"}, RewardOptions()),  # the flag wins
        (
            "launcher",
            ["--rarft.reward_weights", "explain=0.5", "--rarft.correction", "contrastive"],
            {"RARFT_REWARD_WEIGHTS": "format=2"},
            RewardOptions(weights=EXPLAIN_HALF, correction="contrastive"),
        ),
        (
            "launcher",
            ["--rarft.correction", "gain", "--rarft.explain", "debiased"],
            {"RARFT_EXPLAIN": "similarity", "RARFT_CORRECTION": "contrastive"},
            RewardOptions(correction="gain", explain="debiased"),
        ),
        (
            "launcher",
            ["--rarft.sbert_model", "/m", "--rarft.sbert_device", "cpu"],
            {"RARFT_SBERT_DEVICE": "cuda"},
            RewardOptions(sbert_model="/m", sbert_device="cpu"),
        ),
        (
            "plain",
            [
                "--variant",
                "released",
                "--weights",
                "explain=0.5",
                "--sbert-model",
                "/m",
                "--device",
                "cuda",
                "--correction",
                "contrastive",
                "--explain",
                "debiased",
            ],
            {},
            RewardOptions("released", EXPLAIN_HALF, "/m", "cuda", "contrastive", "debiased"),
        ),
    ],
)
def test_a_flag_wins_over_its_variable_which_wins_over_the_default(style, argv, environ, expected):
    assert parse(style, argv, environ) == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variant", "trl"], "invalid choice: 'trl'"),
        (["--correction", "copyproof"], "invalid choice: 'copyproof'"),
        (["--explain", "style"], "invalid choice: 'style'"),
        (["--weights", "brevity=1"], "unknown reward 'brevity'"),
    ],
)
def test_a_bad_flag_is_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse("plain", argv, {})
    assert message in capsys.readouterr().err


def test_every_option_is_a_field_with_a_variable_and_two_flags():
    assert [option.field for option in OPTIONS] == [field.name for field in dataclasses.fields(RewardOptions)]
    for style in ("launcher", "plain"):
        parser = argparse.ArgumentParser()
        add_arguments(parser, style)
        flags = {action.dest: action.option_strings for action in parser._actions}
        assert all(flags[option.field] == [getattr(option, f"{style}_flag")] for option in OPTIONS)
    assert len({option.env for option in OPTIONS}) == len(OPTIONS)


@pytest.mark.parametrize("environment, shown", [(True, "$RARFT_VARIANT, else paper"), (False, "default: paper)")])
def test_help_says_where_each_default_comes_from(environment, shown):
    parser = argparse.ArgumentParser()
    add_arguments(parser, "plain", environment=environment)
    text = " ".join(parser.format_help().split())
    assert shown in text
    # SentenceBERT: rarft_plugin.similarity falls back to its variables in every command
    assert "$RARFT_SBERT_DEVICE, else cpu" in text and "$RARFT_SBERT_MODEL, else the packaged" in text


def test_the_reward_table_shows_every_row_it_is_given():
    extra = Reward(
        "brevity",
        "eq. 9",
        0.25,
        {"paper": (0.0, 1.0), "released": (-3.0, 0.5)},
        "short answers score more",
        function=lambda given, cosines: 1 / (1 + len(given.text)),
    )
    table = reward_table((*REWARDS, extra))
    assert "brevity     eq. 9     0.25    [0, 1]    [-3, 0.5]" in table.splitlines()
    assert "  brevity: short answers score more" in table.splitlines()
    for reward in REWARDS:
        assert any(
            line.startswith(f"{reward.name:<12}{reward.equation:<10}{reward.weight:<8g}") for line in table.splitlines()
        )
    assert "with correction contrastive: correction [-1, 1] (released)" in table
    assert "with correction gain: correction [0, 1] (paper)" in table
    assert "with explain debiased: explain [-1, 1] (paper)" in table


def test_the_variables_help_names_every_variable_and_weight():
    text = variables_help()
    assert all(f"  {option.env} " in text for option in OPTIONS)
    assert all(name in " ".join(text.split()) for name in REWARD_NAMES)
    assert all(len(line) <= 100 for line in text.splitlines())


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "rarft_plugin.train", "--help"],
        ["-m", "rarft_plugin.score_rollouts", "--help"],
        ["-m", "rarft_plugin.reward_options"],
    ],
)
def test_every_command_prints_the_same_reward_table(command):
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True, check=True, timeout=120)
    assert all(line.strip() in done.stdout for line in reward_table().splitlines())


def test_the_module_refuses_arguments():
    done = subprocess.run(
        [sys.executable, "-m", "rarft_plugin.reward_options", "--x"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == "" and "usage" in done.stderr
