"""scripts/gpu_scale.py and scripts/gpu_multi.py on CPU: the paper-scale run's prompts, memory attribution, report and
forecast, the multi-GPU layouts and scaling table, on inputs in the exact formats the GPU runs write (OpenRLHF 0.11.2's
step lines, the sampler's CSV, run.json); bench/gpu_scale.sh and bench/gpu_multi.sh end to end with a stand-in for the
trainer."""

import json
import os
import runpy
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rarft_plugin.schema import span_problem

REPO = Path(__file__).resolve().parents[1]
SCALE = runpy.run_path(str(REPO / "scripts" / "gpu_scale.py"))
MULTI = runpy.run_path(str(REPO / "scripts" / "gpu_multi.py"))
EXCERPT = Path(__file__).parent / "support" / "openrlhf_0_11_2_steps.log"
HI_CHARADES = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"
START = datetime(2026, 12, 6, 10, 0, 0)


def test_log_times_read_the_real_log():
    times = SCALE["log_times"](EXCERPT.read_text(), 2026)
    assert sorted(times) == [1, 2, 3]
    assert times[1] == {"end": datetime(2026, 11, 26, 0, 58, 32)} and times[2]["end"] == datetime(
        2026, 11, 26, 0, 58, 41
    )


def test_log_times_pair_each_step_with_its_sample_line():
    line = "\x1b[36m(PPOTrainer pid=1)\x1b[0m INFO 12-06 10:00:{:02d} ppo_trainer.py:{}] {}"
    text = "\n".join(
        [
            line.format(5, 224, "Sample: ['<|im_start|>system ...', 0.5]"),
            line.format(9, 551, "✨ Global step 1: {'a': 1}"),
            line.format(20, 551, "✨ Global step 2: {'a': 1}"),  # no Sample line logged for this one
        ]
    )
    times = SCALE["log_times"](text, 2026)
    assert times == {
        1: {"end": datetime(2026, 12, 6, 10, 0, 9), "sample": datetime(2026, 12, 6, 10, 0, 5)},
        2: {"end": datetime(2026, 12, 6, 10, 0, 20)},
    }


def test_scale_prompts_one_query_and_one_clip_each():
    items = json.loads(HI_CHARADES.read_text())
    chosen = SCALE["scale_items"](items)
    kinds = [kind for kind, _ in chosen]
    assert kinds.count("charades") == 48 and kinds.count("activitynet") == 16
    # interleaved: any first rows (--data.max_samples) hold both kinds, 3 to 1
    assert all(kinds[i : i + 4].count("activitynet") == 1 for i in range(0, 64, 4))
    assert [item["video"] for kind, item in chosen if kind == "charades"][:2] == [
        "charades_000.mp4",
        "charades_001.mp4",
    ]
    assert len({item["video"] for _, item in chosen}) == 64 and all(len(item["GRPO"]) == 1 for _, item in chosen)
    queries = [(item["query_text"], item["GRPO"][0]["q"]) for _, item in chosen]
    assert len(set(queries)) == 64  # every (item, query) once
    stretched = [item for kind, item in chosen if kind == "activitynet"]
    assert all(item["duration"] == 150.0 and item["timestamp"][1] <= 150.0 for item in stretched)
    # rarft-prep refuses a span that ends after its video: none is chosen (163 of the file's items have one)
    assert all(span_problem(tuple(item["timestamp"]), item["duration"]) is None for _, item in chosen)
    charades = next(item for kind, item in chosen if kind == "charades")
    assert charades["duration"] == items[0]["duration"] and charades["timestamp"] == items[0]["timestamp"]


def status(step, generation=20.0, make_experience=30.0, ppo_train=60.0, broadcast=2.0, response=200.0):
    timings = {"generation": generation, "make_experience": make_experience, "ppo_train": ppo_train,
               "broadcast": broadcast}  # fmt: skip
    return {
        "rarft/video_prep_s": 0.5,
        "rarft/generate_s": 15.0,
        "rarft/reward_s": 0.01,
        "total_length": 3900.0 + response,
        "response_length": response,
        "rollout/num_samples": 128.0,
        "rollout/truncated_rate": 1.0,
        **{f"timing/{name}": value for name, value in timings.items()},
        "timing/step_total": sum(timings.values()),
    }


HAND_OVER_S = 4  # untimed: the experiences (with their pixel values) handed to the actor before ppo_train


def write_run(folder: Path, statuses, memory_by_phase, *, size="3b", new=700, shares=(1.0,), **info):
    """A run folder as bench/gpu_scale.sh leaves it: the steps back to back from START, OpenRLHF's "Sample:" line after
    make_experience and "Global step" line at each step's end (its format, Ray prefix included), one memory sample a
    second with the phase's GPU memory split over the GPUs by `shares` (the hand-over to the actor between
    make_experience and ppo_train at 1 MiB); run.json with `info` besides."""
    folder.mkdir(parents=True)
    lines, rows, cursor = [], ["epoch,local,host_used_mib,gpu_used_mib"], START
    for index, entry in enumerate(statuses, start=1):
        for phase in SCALE["PHASES"]:
            if phase == "ppo_train":
                lines.append(
                    f"\x1b[36m(PPOTrainer pid=2897)\x1b[0m INFO {cursor:%m-%d %H:%M:%S} ppo_trainer.py:224] Sample: "
                    "['<|im_start|>system', 0.0]"
                )
                for _ in range(HAND_OVER_S):
                    rows.append(f"0,{cursor:%Y-%m-%d %H:%M:%S}.000,{50000 + index * 1000},1")
                    cursor += timedelta(seconds=1)
            for _ in range(round(entry[f"timing/{phase}"])):
                gpus = ";".join(str(round(memory_by_phase[phase] * share)) for share in shares)
                rows.append(f"0,{cursor:%Y-%m-%d %H:%M:%S}.000,{50000 + index * 1000},{gpus}")
                cursor += timedelta(seconds=1)
        lines.append(
            f"\x1b[36m(PPOTrainer pid=2897)\x1b[0m INFO {cursor:%m-%d %H:%M:%S} ppo_trainer.py:551] ✨ Global step "
            f"{index}: {entry!r}"
        )
    (folder / "train.log").write_text("Generate samples: 100%|##########|\n" + "\n".join(lines) + "\n")
    (folder / "memory.csv").write_text("\n".join(rows) + "\n")
    info = {"size": size, "device": "H200", "gpu_name": "NVIDIA H200", "max_new_tokens": new, "complete": True, **info}
    (folder / "run.json").write_text(json.dumps(info))
    return folder


MEMORY = {"generation": 90_000, "make_experience": 40_000, "ppo_train": 70_000, "broadcast": 30_000}
WINDOWED = ("generation", "make_experience", "ppo_train")  # broadcast's 2 s are too short for a window


def test_memory_is_attributed_to_the_phase_it_was_used_in(tmp_path):
    run = write_run(tmp_path / "natural", [status(1, generation=40.0), status(2), status(3), status(4)], MEMORY)
    summary = SCALE["run_summary"](run)
    assert summary["steps"] == 4 and summary["steady_steps"] == 3
    assert summary["gpu_peak_by_phase_gib"] == pytest.approx({p: MEMORY[p] / 1024 for p in WINDOWED})
    assert summary["host_peak_gib"] == pytest.approx(54_000 / 1024)
    assert summary["phases_s"]["generation"] == 20.0  # steps 2 on
    assert summary["first_step_s"] == 132.0
    assert summary["prompt_tokens"] == 3900.0 and summary["response_tokens"] == 200.0
    assert summary["generation_tokens_per_s"] == pytest.approx(128 * 200 / 20.0)
    assert summary["truncated"] == 1.0 and summary["max_new_tokens"] == 700
    assert 0 < summary["rarft_share"] < 20.0 / 112.0
    # the generation phase's share of rarft's video prep on each rollout's path (0.5 s of 15.51)
    assert summary["video_on_critical_path_s"] == pytest.approx(20.0 * 0.5 / 15.51)


def test_memory_per_gpu_is_the_fullest_gpus(tmp_path):
    run = write_run(tmp_path / "n200_2gpu", [status(1), status(2)], MEMORY, shares=(0.75, 0.25), gpus=2)
    summary = SCALE["run_summary"](run)
    assert summary["gpu_peak_by_phase_gib"] == pytest.approx({p: MEMORY[p] / 1024 for p in WINDOWED}, abs=1e-3)
    assert summary["gpu_peak_per_gpu_by_phase_gib"] == pytest.approx(
        {p: 0.75 * MEMORY[p] / 1024 for p in WINDOWED}, abs=1e-3
    )
    assert summary["gpu_peak_per_gpu_gib"] == pytest.approx(0.75 * 90_000 / 1024, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("", 0),
        ("Global step 1: {'a': 1", 0),  # the line cut off when the call's time ran out
    ],
)
def test_a_run_without_steps_reports_what_it_has(tmp_path, text, steps):
    run = tmp_path / "n200"
    run.mkdir()
    (run / "train.log").write_text(text)
    (run / "memory.csv").write_text("epoch,local,host_used_mib,gpu_used_mib\n0,2026-12-06 10:00:00.000,1000,5\n0,2026-")
    summary = SCALE["run_summary"](run)
    assert summary["steps"] == steps and summary["host_peak_gib"] == pytest.approx(1000 / 1024)


@pytest.mark.parametrize(
    ("runs", "fixed", "per_token"),
    [
        ([(200, 30.0)], 30.0, 0.0),  # one run: all per batch
        ([(200, 30.0), (700, 55.0)], 20.0, 0.05),
        ([(700, 55.0), (200, 30.0)], 20.0, 0.05),  # order does not matter
        ([(200, 30.0), (200.4, 31.0)], 30.0, 0.0),  # no length difference to fit a slope
        ([(200, 30.0), (700, 25.0)], 30.0, 0.0),  # a negative slope is noise: clipped at zero
    ],
)
def test_generation_splits_into_a_part_per_batch_and_a_part_per_token(runs, fixed, per_token):
    summaries = [{"response_tokens": length, "phases_s": {"generation": seconds}} for length, seconds in runs]
    assert SCALE["generation_split"](summaries) == pytest.approx((fixed, per_token))


def summary(generation=40.0, response=200.0):
    return {
        "response_tokens": response,
        "phases_s": {"generation": generation, "make_experience": 30.0, "ppo_train": 60.0, "broadcast": 2.0},
    }


def test_forecast_follows_its_stated_assumptions():
    forecast = SCALE["forecast"]
    runs = [summary(40.0, 200.0), summary(65.0, 700.0)]  # 30 s per batch + 0.05 s per token
    h100 = forecast(runs, "H200", "3b", "H100")
    a100 = forecast(runs, "H200", "3b", "A100")
    model = 7_615_616_512 / 3_085_938_688  # the language parameters of the published 7B and 3B
    assert h100["factors"]["model"] == pytest.approx(model)
    assert h100["generation_split"] == pytest.approx({"per_batch_s": 30.0, "per_token_s": 0.05})
    # same compute (989 TFLOPS): the per-batch part divides by the 8 GPUs; decode by the H200/H100 bandwidth ratio
    decode = 0.05 * 200 * model * (4.8 / 3.35) * h100["factors"]["decode_batch"]
    assert h100["step_s"]["generation"] == pytest.approx(30.0 * model / 8 + decode)
    assert 0.125 < h100["factors"]["decode_batch"] < 1
    assert h100["step_s"]["ppo_train"] > 60.0 * model / 8  # plus ZeRO-3's traffic
    assert a100["step_s"]["ppo_train"] > h100["step_s"]["ppo_train"]  # 312 vs 989 TFLOPS
    assert h100["steps"] == 1875 and h100["hours"] == pytest.approx(h100["step_total_s"] * 1875 / 3600)
    from_7b = forecast([summary(40.0, 200.0)], "H100", "7b", "H100")
    assert from_7b["factors"] == pytest.approx({"model": 1.0, "compute": 1.0, "bandwidth": 1.0, "rollouts": 1.0,
                                                "decode_batch": from_7b["factors"]["decode_batch"]})  # fmt: skip


@pytest.mark.parametrize("rollouts", [128.0, 32.0])
def test_rarfts_video_prep_is_added_per_step_as_measured(rollouts):
    """The 16 distinct clips a step are decoded once each whatever G, model or card: the seconds the rollouts waited
    for them come out of generation's scaled part and are added back as they are."""
    forecast = SCALE["forecast"]
    plain = forecast([{**summary(40.0, 200.0), "rollouts": rollouts}], "H200", "3b", "H100")
    run = {**summary(40.0 + 12.0, 200.0), "rollouts": rollouts, "video_on_critical_path_s": 12.0}
    video = forecast([run], "H200", "3b", "H100")
    assert video["generation_split"] == pytest.approx(plain["generation_split"])
    assert video["video_prep_s"] == 12.0 and plain["video_prep_s"] == 0.0
    assert video["step_s"]["generation"] == pytest.approx(plain["step_s"]["generation"] + 12.0)
    assert video["step_total_s"] == pytest.approx(plain["step_total_s"] + 12.0)


@pytest.mark.parametrize("order", [1, -1])
def test_the_forecast_takes_its_phases_from_the_run_nearest_the_recipes_length(order):
    """A natural-length run (800 tokens) has longer make_experience and ppo_train than the recipe's 200: it serves
    the generation split only, whatever order the runs come in."""
    forecast = SCALE["forecast"]
    n200 = summary(40.0, 200.0)
    natural = summary(70.0, 800.0)
    natural["phases_s"].update(make_experience=50.0, ppo_train=90.0)
    alone = forecast([n200], "H100", "7b", "H100")
    both = forecast([n200, natural][::order], "H100", "7b", "H100")
    for phase in ("make_experience", "ppo_train", "broadcast"):
        assert both["step_s"][phase] == pytest.approx(alone["step_s"][phase])
    assert both["generation_split"] == pytest.approx({"per_batch_s": 30.0, "per_token_s": 0.05})


@pytest.mark.parametrize(
    ("ready", "video"),
    [
        ((None, None), 7.0),  # no run of the in-loop executor: the reference's figure
        ((None, 1.0), 0.0),  # the run that logs rarft/video_ready measures the code that ships
        ((0.5, 1.0), 0.0),
        ((1.0, 0.5), 7.0),  # of two such runs, the one with the more clips ready
    ],
)
def test_video_prep_is_forecast_from_the_runs_of_the_executor_that_ships(ready, video):
    forecast = SCALE["forecast"]
    waits = (7.0, 0.0)  # the n200 run waited 7 s a step for the event loop; the natural one did not
    runs = [
        {**summary(40.0 + waits[i], length), "video_on_critical_path_s": waits[i],
         **({} if ready[i] is None else {"clips_ready": ready[i]})}
        for i, length in enumerate((200.0, 800.0))
    ]  # fmt: skip
    assert forecast(runs, "H100", "3b", "H100")["video_prep_s"] == video


@pytest.mark.parametrize("rollouts, more", [(128.0, 1.0), (64.0, 2.0), (32.0, 4.0), (None, 1.0)])
def test_a_run_with_fewer_prompts_a_step_is_forecast_per_rollout(rollouts, more):
    """SCALE_PROMPTS=8 (64 rollouts a step): what is per rollout doubles to the paper's 128, broadcast does not."""
    forecast = SCALE["forecast"]
    full = forecast([summary(40.0, 200.0)], "H100", "7b", "H100")
    run = {**summary(40.0, 200.0), **({"rollouts": rollouts} if rollouts else {})}
    scaled = forecast([run], "H100", "7b", "H100")
    assert scaled["factors"]["rollouts"] == more
    assert scaled["generation_split"]["per_batch_s"] == pytest.approx(40.0 * more)
    comm = full["step_s"]["make_experience"] - 30.0 / 8  # ZeRO-3's traffic: per rollout of the paper's step
    assert scaled["step_s"]["make_experience"] == pytest.approx(30.0 * more / 8 + comm)
    assert scaled["step_s"]["broadcast"] == full["step_s"]["broadcast"]


def test_report_writes_the_table_and_the_forecast(tmp_path, capsys):
    write_run(tmp_path / "natural", [status(1, response=700.0)] * 4, MEMORY, new=700)
    ready = {**status(1, generation=12.0), "rarft/video_ready": 0.75}  # the executor's log (READY_LOG) since 12-06
    write_run(tmp_path / "n200", [ready] * 4, MEMORY, new=200, prefetch="0")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "lengths.json").write_text(
        json.dumps({"kinds": {"charades": {"prompts": 48}}, "max_prompt_tokens": 3900})
    )
    code = SCALE["main"](["report", "--run", str(tmp_path / "natural"), "--run", str(tmp_path / "n200"),
                          "--assets", str(assets), "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    table = (tmp_path / "scale.md").read_text()
    assert "| natural | 4 | 700 | 3900 / 700 |" in table and "| n200 (no prefetch) | 4 | 200 | 3900 / 200 |" in table
    assert "| 8 x A100 |" in table and "| 8 x H100 |" in table and "Assumptions:" in table
    saved = json.loads((tmp_path / "scale.json").read_text())
    assert [f["target"] for f in saved["forecasts"]] == ["8 x A100", "8 x H100"]
    without_video = [seconds * (1 - 0.5 / 15.51) for seconds in (20.0, 12.0)]  # generation less the video prep
    per_token = (without_video[0] - without_video[1]) / 500
    assert saved["forecasts"][0]["generation_split"]["per_token_s"] == pytest.approx(per_token)
    assert "of it, rarft's video prep" in table
    assert "| 0.50 s (75% of clips ready) |" in table and "| 0.50 s |" in table  # natural: a run before the log
    assert saved["runs"][1]["clips_ready"] == 0.75 and saved["runs"][0]["clips_ready"] is None


def test_the_report_reads_the_executors_own_log_name():
    from rarft_plugin.openrlhf_agent import READY_LOG

    assert SCALE["READY_LOG"] == READY_LOG


CUT_OFF_LOG = Path(__file__).parent / "support" / "openrlhf_0_11_2_scale_cut_off.log"  # the H100's 3B, 2026-12-06
CUT_OFF_MEMORY = Path(__file__).parent / "support" / "scale_cut_off_memory.csv"


def cut_off_run(folder: Path, log: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.log").write_text(log)
    (folder / "memory.csv").write_bytes(CUT_OFF_MEMORY.read_bytes())
    (folder / "run.json").write_text(json.dumps({"attention": "sdpa", "prompts_per_step": 16, "complete": False}))
    return folder


def test_a_run_cut_off_in_its_first_step_reports_its_phases(tmp_path, capsys):
    """The H100 run that the lease's end cut off in ppo_train: wake-up 04:59:20, asleep 05:01:31, Sample: 05:05:17,
    last memory sample 05:08:56; peaks inside each phase from its memory.csv."""
    run = cut_off_run(tmp_path / "n200", CUT_OFF_LOG.read_text())
    assert SCALE["main"](["report", "--run", str(run), "--out", str(tmp_path)]) == 0
    cut = json.loads((tmp_path / "scale.json").read_text())["runs"][0]["cut_off_step"]
    assert cut["phases_s"] == pytest.approx({"generation": 131.0, "make_experience": 226.0, "ppo_train": 219.0}, abs=1)
    assert cut["cut_off_in"] == "ppo_train"
    assert {k: round(v, 1) for k, v in cut["gpu_peak_by_phase_gib"].items()} == {
        "generation": 60.8, "make_experience": 26.6, "ppo_train": 55.8}  # fmt: skip
    table = (tmp_path / "scale.md").read_text()
    assert "| n200 | sdpa | 16 | 131 s | 226 s | >= 219 s |" in table and "No forecast" in table


@pytest.mark.parametrize(
    "cut_after, in_phase, phases",
    [
        ("Sample: ", "ppo_train", 3),  # the whole log: cut off in ppo_train
        ("sleep freed 39.97 GiB memory in total", "make_experience", 2),  # ended before the Sample: line
        ("wake up tags ['kv_cache']", "generation", 1),  # ended while generating
    ],
)
def test_the_phase_a_run_ended_in_is_a_lower_bound(tmp_path, cut_after, in_phase, phases):
    lines = CUT_OFF_LOG.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if cut_after in line)
    summary = SCALE["run_summary"](cut_off_run(tmp_path / "run", "\n".join(lines[: last + 1])))
    cut = summary["cut_off_step"]
    assert cut["cut_off_in"] == in_phase and len(cut["phases_s"]) == phases


def test_a_log_without_a_wake_up_reports_nothing(tmp_path, capsys):
    lines = [line for line in CUT_OFF_LOG.read_text().splitlines() if "wake up" not in line]
    run = cut_off_run(tmp_path / "run", "\n".join(lines))
    assert SCALE["main"](["report", "--run", str(run), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "scale.md").exists()


def test_report_without_any_step_is_an_error(tmp_path, capsys):
    (tmp_path / "natural").mkdir()
    assert SCALE["main"](["report", "--run", str(tmp_path / "natural"), "--out", str(tmp_path)]) == 2
    assert "no run has a 'Global step' line" in capsys.readouterr().err


def test_measure_logs_the_command_samples_memory_and_records_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SCALE["sample_memory"].__globals__, "read_gpu_used_mib", lambda: [1024.0, 2048.0])
    notice = "time_r1.sh: 2 GPUs: adding --ds.adam_offload (estimated: python -m rarft_plugin.launch.memory)"
    command = [sys.executable, "-c", f"import time; print({notice!r}); time.sleep(0.5); raise SystemExit(3)"]
    fields = ["--field", "gpus=2", "--field", "layout=hybrid", "--field", "gpu_name=NVIDIA H100 80GB HBM3"]
    run = tmp_path / "run"
    assert SCALE["main"](["measure", "--dir", str(run), "--interval", "0.1", *fields, "--", *command]) == 3
    assert notice in capsys.readouterr().out and notice in (run / "train.log").read_text()  # shown and kept
    samples = SCALE["read_memory"](run / "memory.csv")
    assert len(samples) >= 2 and all(s.gpu_mib == 3072.0 and s.fullest_gpu_mib == 2048.0 for s in samples)
    info = json.loads((run / "run.json").read_text())
    assert info.pop("wall_s") >= 0
    assert info == {"gpus": 2, "layout": "hybrid", "gpu_name": "NVIDIA H100 80GB HBM3",
                    "added_flags": "--ds.adam_offload", "exit_code": 3, "complete": False}  # fmt: skip


STAND_IN_TRAINER = """#!/usr/bin/env bash
# python for the bench scripts: `-m rarft_plugin.train` logs 4 steps as OpenRLHF does; anything else is real python
if [[ "$1 $2" == "-m rarft_plugin.train" ]]; then
    printf '%s\\n' "$*" >> "$CALLS/train_args.txt"
    echo "RARFT_NUM_GPUS=$RARFT_NUM_GPUS RARFT_VLLM_GPUS=${RARFT_VLLM_GPUS:-} RARFT_VLLM_TP=${RARFT_VLLM_TP:-}" \\
        >> "$CALLS/train_args.txt"
    for step in 1 2 3 4; do
        echo "(PPOTrainer pid=7) INFO $(date '+%m-%d %H:%M:%S') ppo_trainer.py:224] Sample: ['x', 0.0]"
        echo "(PPOTrainer pid=7) INFO $(date '+%m-%d %H:%M:%S') ppo_trainer.py:551] ✨ Global step $step: $STATUS"
    done
    exit 0
fi
if [[ "$1" == */bench/video_pipeline.py ]]; then  # the host's decoders: recorded, not run
    printf '%s\n' "$*" >> "$CALLS/train_args.txt"
    echo "decoders measured"
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def scale_assets(out: Path, prompts: int = 64) -> None:
    """bench/gpu_scale.sh's assets in place (built: nothing to do) and bench/video_pipeline.py's result."""
    assets = out / "assets"
    (assets / "model_3b").mkdir(parents=True)
    (assets / "model_3b" / "preprocessor_config.json").write_text("{}")
    (assets / "model_3b" / "built.json").write_text("{}")
    (assets / "videos").mkdir()
    for kind, count in SCALE["KINDS"]:
        for number in range(count):
            (assets / "videos" / f"{kind}_{number:03d}.mp4").write_bytes(b"")
    (assets / "train.jsonl").write_text("{}\n" * prompts)  # as many prompts as the run asks for: kept
    (assets / "lengths.json").write_text(json.dumps({"kinds": {}, "max_prompt_tokens": 3900}))
    (out / "video_pipeline.txt").write_text("measured before\n")  # bench/video_pipeline.py on the host: done


def bench(script: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`bench/SCRIPT ARGS` with the stand-in trainer as PYTHON (its calls in tmp_path/train_args.txt)."""
    python = tmp_path / "python"
    python.write_text(STAND_IN_TRAINER)
    python.chmod(0o755)
    return subprocess.run(
        ["bash", str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHON": str(python),
            "REAL_PYTHON": sys.executable,
            "CALLS": str(tmp_path),
            "STATUS": repr(status(1)),
            **env,
        },  # fmt: skip
        timeout=600,
    )


def test_the_bench_script_runs_the_recipe_on_one_gpu_and_reports(tmp_path):
    """bench/gpu_scale.sh end to end with its assets in place and a stand-in for the trainer: which flags reach the
    recipe, what each run leaves (run.json, memory.csv, train.log) and the report."""
    out = tmp_path / "out"
    scale_assets(out)
    done = bench("gpu_scale.sh", tmp_path, str(out), "natural")
    assert done.returncode == 0, done.stderr[-3000:]
    args = (tmp_path / "train_args.txt").read_text()
    assert "--rollout.max_new_tokens 708" in args  # 4608 - the longest prompt: the natural length
    assert "--data.max_samples 64 --train.num_episodes 1" in args and "RARFT_NUM_GPUS=1 " in args
    assert "--rollout.max_new_tokens 200" in args  # the recipe's own, overridden by the later value
    info = json.loads((out / "natural" / "run.json").read_text())
    assert info["complete"] is True and info["max_new_tokens"] == 708 and info["size"] == "3b" and info["gpus"] == 1
    assert (out / "natural" / "memory.csv").read_text().startswith("epoch,local,host_used_mib,gpu_used_mib")
    assert "| natural (prefetch) | 4 | 708 | 3900 / 200 |" in (out / "scale.md").read_text()
    again = bench("gpu_scale.sh", tmp_path, str(out), "natural")
    assert again.returncode == 0 and "natural: complete, skipped" in again.stdout


# (env, the batch flags the recipe gets, run.json's prompts and samples a step)
SMALLER_STEPS = {
    "8-prompts": (
        {"SCALE_PROMPTS": "8"},
        "--rollout.batch_size 8 --rollout.n_samples_per_prompt 8 --train.batch_size 64",
        8,
        8,
    ),
    "8-prompts-x2": (
        {"SCALE_PROMPTS": "8", "SCALE_SAMPLES": "2"},
        "--rollout.batch_size 8 --rollout.n_samples_per_prompt 2 --train.batch_size 16",
        8,
        2,
    ),
}


@pytest.mark.parametrize("case", SMALLER_STEPS)
def test_the_bench_runs_fewer_prompts_or_rollouts_a_step_and_names_its_attention(tmp_path, case):
    """SCALE_PROMPTS=8 SCALE_STEPS=3 (a step that fits a lease; SCALE_SAMPLES=2: the same distinct clips a step with
    fewer rollouts each): the batch sizes, the samples and the attention reach the recipe and run.json; without
    flash-attn's CUDA extension (as here) the bench picks sdpa."""
    env, flags, prompts, samples = SMALLER_STEPS[case]
    out = tmp_path / "out"
    scale_assets(out, prompts=24)
    done = bench("gpu_scale.sh", tmp_path, str(out), "n200", SCALE_STEPS="3", **env)
    assert done.returncode == 0, done.stderr[-3000:]
    args = (tmp_path / "train_args.txt").read_text()
    assert "--data.max_samples 24 " in args and flags in args
    assert "--ds.attn_implementation sdpa" in args
    info = json.loads((out / "n200" / "run.json").read_text())
    assert info["attention"] == "sdpa" and (info["prompts_per_step"], info["samples_per_prompt"]) == (prompts, samples)
    assert info["prefetch"] == 1  # the default, recorded
    assert "clips: 24 " in done.stdout  # 18 Charades-like + 6 ActivityNet-like


def test_a_run_takes_fewer_steps_of_the_assets_when_asked(tmp_path):
    """SCALE_RUN_STEPS: n200 on the first 2 steps' prompts of the 4 steps' assets a natural run used (one lease,
    one card); a count outside 1..SCALE_STEPS is refused before anything runs."""
    out = tmp_path / "out"
    scale_assets(out)
    done = bench("gpu_scale.sh", tmp_path, str(out), "n200", SCALE_RUN_STEPS="2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--data.max_samples 32 " in (tmp_path / "train_args.txt").read_text()
    assert json.loads((out / "n200" / "run.json").read_text())["steps_asked"] == 2
    refused = bench("gpu_scale.sh", tmp_path, str(out), "n200", SCALE_RUN_STEPS="5")
    assert refused.returncode == 2 and "SCALE_RUN_STEPS must be 1 to SCALE_STEPS (4)" in refused.stderr


@pytest.mark.parametrize("pipeline, measured", [("1", True), ("0", False)], ids=["measured", "skipped"])
def test_the_bench_measures_the_hosts_video_pipeline_unless_told_not_to(tmp_path, pipeline, measured):
    out = tmp_path / "out"
    scale_assets(out)
    (out / "video_pipeline.txt").unlink()
    done = bench("gpu_scale.sh", tmp_path, str(out), "n200", SCALE_PIPELINE=pipeline)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = (tmp_path / "train_args.txt").read_text()
    assert ("video_pipeline.py" in calls) is measured and (out / "video_pipeline.txt").exists() is measured
    assert (out / "n200" / "run.json").exists()


# ---------------------------------------------------------------- several GPUs (scripts/gpu_multi.py)


@pytest.mark.parametrize(
    "gpus, fitting",
    [
        (1, ["hybrid"]),
        (2, ["hybrid", "hybrid_tp2", "separate"]),  # separate engines of 2 GPUs need 2 for vLLM + 2 for the actor
        (3, ["hybrid", "separate"]),  # vLLM on 1 of 3 (the share rounded down); no engines of 2 GPUs
        (4, ["hybrid", "hybrid_tp2", "separate", "separate_tp2"]),
        (8, ["hybrid", "hybrid_tp2", "separate", "separate_tp2"]),
    ],
)
def test_the_layouts_that_fit_a_gpu_count(gpus, fitting):
    assert [layout.name for layout in MULTI["fitting"](gpus)] == fitting


@pytest.mark.parametrize(
    "name, gpus, env, placement",
    [
        ("hybrid", 8, ("8", "0", "1"), "actor + reference + 8 engine(s) x TP 1 on 8 GPU(s)"),
        ("hybrid_tp2", 4, ("4", "0", "2"), "actor + reference + 2 engine(s) x TP 2 on 4 GPU(s)"),
        ("separate", 2, ("2", "1", "1"), "actor + reference on 1, 1 engine(s) x TP 1 on 1"),
        ("separate_tp2", 8, ("8", "4", "2"), "actor + reference on 4, 2 engine(s) x TP 2 on 4"),
        ("separate_tp2", 2, None, "does not fit"),
    ],
)
def test_a_layout_is_the_recipes_variables(name, gpus, env, placement):
    layout = MULTI["LAYOUT_NAMES"][name]
    variables = ("RARFT_NUM_GPUS", "RARFT_VLLM_GPUS", "RARFT_VLLM_TP")
    assert layout.env(gpus) == (dict(zip(variables, env, strict=True)) if env else None)
    assert layout.placement(gpus) == placement


def test_the_scaling_table_compares_each_run_with_one_gpu_of_the_same_model(tmp_path):
    runs = [
        write_run(tmp_path / "scale" / "n200", [status(s) for s in (1, 2, 3)], MEMORY, new=200, gpus=1,
                  layout="hybrid"),
        write_run(tmp_path / "scale" / "n200_2gpu", [status(s, ppo_train=30.0) for s in (1, 2, 3)], MEMORY, new=200,
                  shares=(0.5, 0.5), gpus=2, layout="hybrid"),
        write_run(tmp_path / "layouts" / "separate_2gpu", [status(1) | {"vllm_kl": -0.002}] * 2, MEMORY, size="tiny",
                  new=64, gpus=2, layout="separate"),
    ]  # fmt: skip
    failed = tmp_path / "layouts" / "hybrid_tp2_2gpu"
    failed.mkdir()
    (failed / "train.log").write_text("starting\nValueError: Total number of attention heads (3) must be divisible\n")
    (failed / "run.json").write_text(json.dumps({"size": "tiny", "gpus": 2, "layout": "hybrid_tp2", "exit_code": 1}))
    args = [arg for run in [*runs, failed] for arg in ("--run", str(run))]
    assert MULTI["main"](["report", *args, "--out", str(tmp_path)]) == 0
    table = (tmp_path / "multi.md").read_text()
    one, two, separate, broken = table.splitlines()[4:8]
    assert one.startswith("| scale/n200 | 3b | hybrid | actor + reference + 1 engine(s) x TP 1 on 1 GPU(s) | complete")
    assert "| 1.00x |" in one and "| 82.0 s | 1.37x |" in two  # 112 s a step on one GPU, 82 on two
    assert "ppo_train 34 |" in two  # the fullest GPU: half of the 70,000 MiB
    assert "| - | 0.002 |" in separate  # no one-GPU run of the tiny model here: no ratio
    assert "failed (exit 1): ValueError: Total number of attention heads (3)" in broken
    saved = json.loads((tmp_path / "multi.json").read_text())
    assert saved["speedups"] == pytest.approx({"scale/n200": 1.0, "scale/n200_2gpu": 112.0 / 82.0})


def test_the_multi_gpu_bench_runs_every_layout_and_the_scale_runs_and_reports(tmp_path):
    """bench/gpu_multi.sh on a 2-GPU machine with the stand-in trainer: the smoke on 1 GPU, then in each layout that
    fits 2; n200 at 1 and 2 GPUs; the table of them all. A second call skips what is complete."""
    out = tmp_path / "out"
    layouts = out / "layouts" / "assets"
    layouts.mkdir(parents=True)
    for name in ("train.jsonl", "eval.jsonl"):  # scripts/gpu_smoke.sh's assets: built
        (layouts / name).write_text("")
    scale_assets(out / "scale")
    done = bench("gpu_multi.sh", tmp_path, str(out), MULTI_GPUS="2", STATUS=repr(status(1) | {"vllm_kl": 0.001}))
    assert done.returncode == 0, done.stderr[-3000:]
    calls = (tmp_path / "train_args.txt").read_text().splitlines()
    variables = [line for line in calls if line.startswith("RARFT_NUM_GPUS=")]
    assert variables == [
        "RARFT_NUM_GPUS=1 RARFT_VLLM_GPUS=0 RARFT_VLLM_TP=1",  # the one-GPU baseline of the layouts
        "RARFT_NUM_GPUS=2 RARFT_VLLM_GPUS=0 RARFT_VLLM_TP=1",
        "RARFT_NUM_GPUS=2 RARFT_VLLM_GPUS=0 RARFT_VLLM_TP=2",
        "RARFT_NUM_GPUS=2 RARFT_VLLM_GPUS=1 RARFT_VLLM_TP=1",
        "RARFT_NUM_GPUS=1 RARFT_VLLM_GPUS= RARFT_VLLM_TP=",  # n200 on 1, then 2 GPUs (bench/gpu_scale.sh)
        "RARFT_NUM_GPUS=2 RARFT_VLLM_GPUS= RARFT_VLLM_TP=",
    ]
    smoke = [line for line in calls if "--algo.advantage.is_correction_level token" in line]
    assert len(smoke) == 4 and all("--data.max_samples 8" in line for line in smoke)  # recipes/single_gpu_smoke.sh
    assert "--train.colocate_actor_ref" in smoke[3] and "--vllm.num_engines 1 --vllm.tensor_parallel_size 1" in smoke[3]
    assert "--vllm.num_engines 1 --vllm.tensor_parallel_size 2 --train.colocate_all" in smoke[2]
    table = (out / "multi.md").read_text()
    for run in ("hybrid_1gpu", "hybrid_2gpu", "hybrid_tp2_2gpu", "separate_2gpu", "scale/n200 ", "scale/n200_2gpu"):
        assert f"| {run.replace('hybrid', 'layouts/hybrid').replace('separate', 'layouts/separate')}" in table
    assert table.count("| complete |") == 6 and table.count("| 1.00x | 0.001 |") == 6  # vllm_kl, where logged
    assert (out / "layouts" / "separate_2gpu" / "train.log").is_file()  # written by scripts/gpu_smoke.sh
    again = bench("gpu_multi.sh", tmp_path, str(out), "layouts", MULTI_GPUS="2")
    assert again.returncode == 0 and again.stdout.count("complete, skipped") == 4
