"""scripts/gpu_run.py on CPU: the pieces of the GPU learning run that need no GPU, against a real excerpt of
OpenRLHF 0.11.2's train_ppo_ray log (three steps of the 2026-11-26 learning run, Ray prefixes, progress bars
and all) and the per-step data shipped in docs/gpu/."""

import json
import runpy
from pathlib import Path

import pytest

from rarft_plugin.dataset import load_examples
from rarft_plugin.rewards import score
from rarft_plugin.schema import Label
from rarft_plugin.trainer_logs import Rollout, eval_logs

REPO = Path(__file__).resolve().parents[1]
GPU_RUN = runpy.run_path(str(REPO / "scripts" / "gpu_run.py"))
EXCERPT = Path(__file__).parent / "support" / "openrlhf_0_11_2_steps.log"
RECORDED_REWARDS = ("format", "refuse_iou", "explain", "correction")  # the rewards of the run EXCERPT comes from
RUN_B = REPO / "docs" / "gpu" / "curve_token_mean_lr3e-4.json"
HI_CHARADES = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"


def test_step_logs_reads_every_step_of_the_real_log():
    steps = GPU_RUN["step_logs"](EXCERPT.read_text())
    assert [s["step"] for s in steps] == [1, 2, 3]
    for status in steps:
        assert {*RECORDED_REWARDS, "rarft/video_prep_s", "rarft/generate_s", "rarft/reward_s", "vllm_kl"} <= set(status)
        assert status["rollout/num_samples"] == 32.0


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("", []),
        ("Global step 1: {'a': 1}\n", [1]),
        ("Global step 2: {'a': 1}\nGlobal step 1: {'a': 2}\n", [1, 2]),  # sorted by step
        ("Global step 1: {'a': 1}\nGlobal step 2: {'a': 1, 'b", [1]),  # cut off when the run was killed
        ("Global step 1: {'a': nan}\n", []),  # not a literal: skipped, not raised
        ("global step 1: {'a': 1}\n", []),
    ],
)
def test_step_logs_cases(text, steps):
    assert [s["step"] for s in GPU_RUN["step_logs"](text)] == steps


def test_step_logs_keeps_the_last_line_of_a_step():
    # scripts/gpu_smoke.sh appends to train.log: a resumed or repeated run logs a step again
    text = "Global step 1: {'a': 1}\nGlobal step 2: {'a': 2}\nGlobal step 1: {'a': 3}\n"
    assert [(s["step"], s["a"]) for s in GPU_RUN["step_logs"](text)] == [(1, 3), (2, 2)]


def test_step_shares_are_parts_of_the_step():
    for status in GPU_RUN["step_logs"](EXCERPT.read_text()):
        shares = GPU_RUN["step_shares"](status)
        assert shares["rarft"] == pytest.approx(shares["rarft_video_prep"] + shares["rarft_reward"])
        assert 0 < shares["rarft"] < shares["generation"] < 1
        phases = ("generation", "make_experience", "ppo_train", "broadcast")
        assert 0.9 < sum(shares[name] for name in phases) <= 1.0 + 1e-9  # the rest: logging, scheduling


@pytest.mark.parametrize(
    ("values", "mean", "se"),
    [
        ([1.0], 1.0, 0.0),
        ([0.0, 1.0], 0.5, 0.5),
        ([2.0, 2.0, 2.0, 2.0], 2.0, 0.0),
        ([0.0, 0.0, 1.0, 1.0], 0.5, (1 / 3 / 4) ** 0.5),
    ],
)
def test_summarise(values, mean, se):
    out = GPU_RUN["summarise"]([{"total": v} for v in values])["total"]
    assert out["mean"] == pytest.approx(mean) and out["se"] == pytest.approx(se)


# shipped run -> (reward, documented change) in docs/gpu-log.md
DOCUMENTED_CHANGES = [
    ("curve_token_mean_lr3e-4.json", "format", -0.258),  # run B
    ("curve_choice_lr1e-4_b.json", "total", 0.157),  # run E, the choice warm start
    ("curve_choice_lr1e-4_b.json", "refuse_iou", 0.158),
    ("curve_choice_lr1e-4_b.json", "taught", -0.422),
    ("curve_choice_n16_lr1e-4_g.json", "format", 0.254),  # run G: learning shown
    ("curve_choice_n16_lr1e-4_g.json", "total", 0.424),
    ("curve_choice_n16_lr1e-4_g.json", "right", 0.113),
]


@pytest.mark.parametrize(("file", "name", "documented"), DOCUMENTED_CHANGES)
def test_paired_change_reproduces_the_shipped_runs(file, name, documented):
    run = json.loads((RUN_B.parent / file).read_text())
    change = GPU_RUN["paired_change"](run["before"], run["after"])
    for reward, stored in run["change"].items():
        assert change[reward] == pytest.approx(stored), reward
    assert change[name]["mean"] == pytest.approx(documented, abs=5e-4)


def test_paired_change_refuses_unpaired_prompts():
    run = json.loads(RUN_B.read_text())
    with pytest.raises(ValueError):  # different prompts cannot be paired
        GPU_RUN["paired_change"](run["before"], {**run["after"], "per_prompt": run["after"]["per_prompt"][:-1]})


@pytest.mark.parametrize(
    ("values", "window", "expected"),
    [([1, 2, 3, 4], 2, [1, 1.5, 2.5, 3.5]), ([4], 6, [4]), ([1, 3], 1, [1, 3]), ([], 3, [])],
)
def test_moving_mean(values, window, expected):
    assert GPU_RUN["moving_mean"](values, window) == pytest.approx(expected)


def test_curve_writes_table_json_and_plot(tmp_path):
    run = json.loads(RUN_B.read_text())
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(run["before"]))
    after.write_text(json.dumps(run["after"]))
    argv = ["curve", "--log", str(EXCERPT), "--before", str(before), "--after", str(after), "--out", str(tmp_path)]
    assert GPU_RUN["main"](argv) == 0
    table = (tmp_path / "curve.md").read_text()
    assert "| format | 0.461 ± 0.033 | 0.203 ± 0.055 | -0.258 ± 0.079 |" in table
    assert table.count("\n| 1 |") + table.count("\n| 2 |") + table.count("\n| 3 |") == 3
    assert [r["step"] for r in json.loads((tmp_path / "curve.json").read_text())["steps"]] == [1, 2, 3]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PPO_TRAINER_LOG = "\x1b[36m(PPOTrainer pid=2897)\x1b[0m INFO 11-26 00:59:{second:02d} ppo_trainer.py:598] "


def eval_line(step: int, right: float) -> str:
    """An evaluation line of a run with --eval.dataset, as OpenRLHF 0.11.2's PPOTrainer.evaluate prints it (logger
    format and f-string), with upstream's keys and rarft's (`trainer_logs.eval_logs`): synthetic values, `right` the
    share of queries of each class answered right."""
    label = {True: Label(True, 10.0, "q", (1.0, 3.0), id="0:0"), False: Label(False, 10.0, "q", difficulty="weak")}

    def logs_of(relevant: bool, ok: bool) -> dict[str, float]:  # right: a relevant query answered, else refused
        ra_iou = (0.8 if relevant else 1.0) if ok else 0.0
        return {"rarft/answered": float(relevant == ok), "rarft/ra_iou": ra_iou, "rarft/compliant": 1.0}

    rollouts = [
        Rollout(label[relevant], 1.0, False, logs_of(relevant, i < round(right * 10)))
        for relevant in (True, False)
        for i in range(10)
    ]
    logs = {"eval_default_pass4": 2.5, "eval_default_pass1": 1.5, "eval_num_samples": 80.0, **eval_logs(rollouts)}
    message = f"✨ Evaluation completed in 0:00:05, global_step {step}, eval_metrics: {logs}"
    return PPO_TRAINER_LOG.format(second=step) + message


def test_curve_plots_the_in_loop_evaluation_next_to_the_rewards(tmp_path):
    log = tmp_path / "train.log"
    lines = [eval_line(step, right) for step, right in ((1, 0.2), (2, 0.5), (3, 0.7))]
    log.write_text(EXCERPT.read_text() + "\n".join(lines) + "\n")
    assert GPU_RUN["main"](["curve", "--log", str(log), "--out", str(tmp_path)]) == 0
    evals = json.loads((tmp_path / "curve.json").read_text())["evals"]
    assert [(e["step"], e["rarft/ra_iou/R0.5"]) for e in evals] == [(1, 0.2), (2, 0.5), (3, 0.7)]
    assert evals[2]["rarft/ra_iou/mIoU"] == pytest.approx((0.8 * 7 + 7) / 20)  # 7 of 10 right in each class
    table = (tmp_path / "curve.md").read_text()
    assert "| 3 | 0.630 | 0.700 | 0.700 | 1.000 |" in table
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("", []),
        ("✨ Evaluation completed in 0:00:05, global_step 4, eval_metrics: {'a': 1}\n", [4]),
        ("✨ Evaluation completed in 0:00:05, global_step 4, eval_metrics: {'a': 1, 'b\n", []),  # cut off
        ("Global step 4: {'a': 1}\n", []),  # a step line is not an evaluation
    ],
)
def test_eval_logs_cases(text, steps):
    assert [e["step"] for e in GPU_RUN["eval_logs"](text)] == steps


def test_curve_without_step_lines_fails(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text("Ray started\n")
    assert GPU_RUN["main"](["curve", "--log", str(log), "--out", str(tmp_path)]) == 2
    assert "no 'Global step' lines" in capsys.readouterr().err
    assert not (tmp_path / "curve.json").exists()


class Constant:
    """Every pair of texts equally similar: explain 0, correction 0.5 (paper variant)."""

    def cosine_pairs(self, pairs):
        return [0.5] * len(pairs)


# (behaviour, relevant query?) -> (format, refuse-IoU) it earns; with Constant similarity the correction adds 0.5
# for an irrelevant query answered in format, nothing else.
TAUGHT = {
    ("ground", True): (1.0, 1.0),
    ("ground", False): (1.0, 0.0),
    ("refuse", True): (1.0, 0.0),
    ("refuse", False): (1.0, 1.0),
    ("plain", True): (0.0, 0.0),
    ("plain", False): (0.0, 0.0),
}


def test_warm_start_behaviours_earn_what_they_should_on_every_shipped_query():
    examples, _ = load_examples(HI_CHARADES)
    assert len(examples) > 2000
    for example in examples:
        label = example.label
        taught = GPU_RUN["target_responses"](label)
        totals = {}
        for name, text in taught.items():
            rewards = score(text, label, similarity=Constant())
            assert (rewards["format"], rewards["refuse_iou"]) == TAUGHT[name, label.relevant], (example.key, name)
            totals[name] = rewards["total"]
        right = GPU_RUN["right_behaviour"](label)
        assert totals[right] == max(totals.values()) and list(totals.values()).count(totals[right]) == 1, example.key
        assert totals["plain"] == 0.0, example.key


@pytest.mark.parametrize(
    ("step", "steps", "warmup", "factor"),
    [
        (0, 10, 0, 1.0),
        (5, 10, 0, 0.55),
        (10, 10, 0, 0.1),
        (20, 10, 0, 0.1),  # held at OpenRLHF's min_lr_ratio past the end
        (0, 10, 4, 0.25),  # warm-up from the first step
        (3, 10, 4, 1.0),
        (4, 10, 4, 1.0),
        (7, 10, 4, 0.55),
    ],
)
def test_lr_factor(step, steps, warmup, factor):
    assert GPU_RUN["lr_factor"](step, steps, warmup) == pytest.approx(factor)
