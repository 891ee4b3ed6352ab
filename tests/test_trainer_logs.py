"""The trainer's task metrics and exploit monitors: their values (the same as rarft-eval's), and OpenRLHF 0.11.2's own
evaluation and step code running with rarft-train's trainer hook (`rarft_plugin.launch.upstream`, section 5)."""

import ast
import json
import logging
import math
import subprocess
import sys
import types
from itertools import cycle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from support.chatml import chatml_tokenizer, run_text_executor
from support.import_stand_ins import install_import_stand_ins

import rarft_eval.metrics
from rarft_eval.exploits import CORRECTION_TAG, POLICIES, neighbours
from rarft_eval.metrics import compute_metrics, format_compliance, rule_judgement
from rarft_eval.predictions import prediction_from_example
from rarft_eval.reading import read
from rarft_plugin import task_metrics
from rarft_plugin.dataset import load_examples
from rarft_plugin.launch.upstream import TRAINER_MODULE, report_task_in_trainer_logs, rollouts_of
from rarft_plugin.prompts import instruction
from rarft_plugin.rollout_logs import score_with_logs
from rarft_plugin.schema import Label
from rarft_plugin.trainer_logs import (
    MONITORS,
    WARN_AFTER_STEPS,
    ExploitWatch,
    Rollout,
    eval_logs,
    monitor_rates,
    step_logs,
    zero_variance_share,
)

install_import_stand_ins()  # OpenRLHF's trainer imports vllm and flash_attn at module load

QUERIES = 60  # the first HI-Charades items: relevant and hard-irrelevant queries of every level
POLICY_CYCLE = ("oracle", "always_refuse", "whole_video", "hedge", "copy_correction", "empty", "multi_answer")


@pytest.fixture(scope="module")
def examples(official_data):
    return load_examples(official_data / "hi_vtg_charades.json")[0][:QUERIES]


def policy_responses(labels, names):
    """One response per label, from the rarft-audit policies `names` in turn."""
    writers = {policy.name: policy.write for policy in POLICIES}
    return [
        writers[name](label, CORRECTION_TAG["paper"], neighbour)
        for label, neighbour, name in zip(labels, neighbours(labels), cycle(names))
    ]


def prompt_of(label: Label) -> str:
    return f"<|im_start|>user\n{instruction('ra_rft', label.query)}<|im_end|>\n<|im_start|>assistant\n"


# ---------------------------------------------------------------- the values


def test_the_shared_metrics_are_one_implementation():
    for name in ("Grounding", "Relevance", "grounding", "level_subsets", "recall_at", "relevance"):
        assert getattr(rarft_eval.metrics, name) is getattr(task_metrics, name), name


@pytest.mark.parametrize("policies", [POLICY_CYCLE, ("oracle",), ("always_refuse",), ("whole_video", "oracle")])
def test_in_loop_metrics_equal_rarft_eval_with_the_rule_judge(examples, sbert, policies):
    labels = [example.label for example in examples]
    responses = policy_responses(labels, policies)
    scored = score_with_logs(responses, labels, [prompt_of(label) for label in labels], similarity=sbert)
    logs = eval_logs(
        [Rollout(label, s.rewards["total"], False, s.logs) for label, s in zip(labels, scored, strict=True)]
    )

    predictions = [
        prediction_from_example(example, response) for example, response in zip(examples, responses, strict=True)
    ]
    readings = [read(prediction, "ra_rft") for prediction in predictions]
    metrics, _ = compute_metrics(predictions, [rule_judgement(reading) for reading in readings])
    compliance = format_compliance(readings, "ra_rft", "given")
    expected = {
        "rarft/ra_iou/R0.3": metrics.ra_iou.r_at_0_3,
        "rarft/ra_iou/R0.5": metrics.ra_iou.r_at_0_5,
        "rarft/ra_iou/R0.7": metrics.ra_iou.r_at_0_7,
        "rarft/ra_iou/mIoU": metrics.ra_iou.miou,
        "rarft/f1/relevant": metrics.relevance.f1_rel,
        "rarft/f1/irrelevant": metrics.relevance.f1_irrel,
        "rarft/f1/average": metrics.relevance.f1_avg,
        "rarft/accuracy": metrics.relevance.accuracy,
        "rarft/format_compliance": compliance.compliant_share,
        "rarft/queries": float(len(responses)),
    }
    for level, row in metrics.by_difficulty.items():
        paired = row.paired
        expected |= {
            f"rarft/{level}/refusal_f1": row.f1,
            f"rarft/{level}/refusal_accuracy": row.refusal_accuracy,
            f"rarft/{level}/f1/relevant": paired.relevance.f1_rel,
            f"rarft/{level}/f1/irrelevant": paired.relevance.f1_irrel,
            f"rarft/{level}/f1/average": paired.relevance.f1_avg,
            f"rarft/{level}/accuracy": paired.relevance.accuracy,
            f"rarft/{level}/ra_iou/R0.3": paired.ra_iou.r_at_0_3,
            f"rarft/{level}/ra_iou/R0.5": paired.ra_iou.r_at_0_5,
            f"rarft/{level}/ra_iou/R0.7": paired.ra_iou.r_at_0_7,
            f"rarft/{level}/ra_iou/mIoU": paired.ra_iou.miou,
        }
    assert set(metrics.by_difficulty) == {"strong", "moderate", "weak"}
    assert logs == pytest.approx(expected, abs=1e-12)


def rollout(relevant=True, answered=True, reward=1.0, truncated=False, **flags):
    label = Label(relevant=relevant, duration=10.0, query="q", timestamp=(1.0, 2.0) if relevant else None)
    logs = {"rarft/answered": float(answered), "rarft/ra_iou": 0.0, "rarft/compliant": 1.0}
    names = ("no_answer", "multi_answer", "whole_video", "special_token", "copied_correction", "templated_explain")
    logs |= {f"rarft/{name}": float(flags.get(name, False)) for name in names}
    return Rollout(label, reward, truncated, logs)


@pytest.mark.parametrize(
    "rollouts, expected",
    [
        # refusals are counted over the relevant rollouts only; copies over the irrelevant ones
        (
            [rollout(answered=False), rollout(), rollout(relevant=False, answered=False, copied_correction=True)],
            {"refused_relevant": 0.5, "copied_correction": 1.0, "no_answer": 0.0},
        ),
        # whole-clip spans over the rollouts that answered
        ([rollout(whole_video=True), rollout(answered=False), rollout()], {"whole_video": 0.5, "truncated": 0.0}),
        ([rollout(truncated=True), rollout(no_answer=True)], {"truncated": 0.5, "no_answer": 0.5}),
        ([rollout()], {"copied_correction": None, "templated_explain": None}),  # no irrelevant rollout: no rate
    ],
)
def test_monitor_rates_are_shares_of_their_populations(rollouts, expected):
    rates = monitor_rates(rollouts)
    assert {name: rates[f"rarft/monitor/{name}"] for name in expected} == expected
    assert len(rates) == len(MONITORS)


@pytest.mark.parametrize(
    "rewards, size, share",
    [
        ([1.0, 1.0, 0.0, 2.0], 2, 0.5),
        ([0.5] * 8, 4, 1.0),
        ([0.0, 1e-7, 3.0, 3.0 + 1e-9], 2, 1.0),  # rounding is not variance
        ([1.0, 2.0, 3.0], 2, 0.0),  # an incomplete last group is left out
        ([], 4, None),
    ],
)
def test_zero_variance_share(rewards, size, share):
    assert zero_variance_share(rewards, size) == share


def test_a_rate_high_for_several_steps_warns_once_and_again_after_it_recovers():
    watch = ExploitWatch()
    copying = step_logs([rollout(relevant=False, answered=False, copied_correction=True)] * 4, 4)
    honest = step_logs([rollout(relevant=False, answered=False)] * 4, 4)
    lines = [watch.update(step, logs) for step, logs in enumerate([copying] * 5 + [honest] + [copying] * 3, 1)]
    warned = [step for step, found in enumerate(lines, 1) if found]
    assert warned == [WARN_AFTER_STEPS, 6 + WARN_AFTER_STEPS]
    (line,) = lines[WARN_AFTER_STEPS - 1]
    assert "copied_correction" in line and "counter: --rarft.correction gain" in line


# ---------------------------------------------------------------- through OpenRLHF's own code


@pytest.fixture(scope="module")
def trainer_module():
    """OpenRLHF's trainer module with rarft-train's hook installed as a Ray worker's setup hook installs it."""
    report_task_in_trainer_logs()  # before or after the import: the wrapping happens once either way
    import importlib

    module = importlib.import_module(TRAINER_MODULE)
    assert hasattr(module.compute_eval_metrics, "__wrapped__")
    assert hasattr(module.BasePPOTrainer.train_step, "__wrapped__")
    return module


@pytest.fixture(scope="module")
def tokenizer():
    return chatml_tokenizer(policy_responses([], ()))


def samples_of(labels, responses, tokenizer, truncated=()):
    """OpenRLHF `Experience` samples as its SamplesGenerator makes them, from rollouts of OpenRLHF's text executor
    with rarft's reward file (real rewards, scores and extra logs)."""
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    out = []
    for index, (label, response) in enumerate(zip(labels, responses, strict=True)):
        finish = "length" if index in truncated else "stop"
        output = run_text_executor(
            tokenizer, response, json.dumps(label.to_json()), prompt_of(label), finish_reason=finish
        )
        assert output["reward"] is not None, "OpenRLHF swallowed an exception from reward_func"
        out.append(SamplesGenerator._process_response_into_experience(None, output, max_len=4096))
    return out


def eval_batches(labels):
    """OpenRLHF's eval dataloader: batches of (datasources, prompts, labels, images)."""
    prompts = [prompt_of(label) for label in labels]
    return [
        (
            ["hi_charades"] * len(labels),
            prompts,
            [json.dumps(label.to_json()) for label in labels],
            [None] * len(labels),
        )
    ]


def test_upstream_compute_eval_metrics_reports_the_task(trainer_module, examples, tokenizer, monkeypatch):
    for name in ("RARFT_VARIANT", "RARFT_CORRECTION", "RARFT_REWARD_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    labels = [example.label for example in examples[:21]]
    responses = policy_responses(labels, POLICY_CYCLE)
    samples = samples_of(labels, responses, tokenizer)
    logs = trainer_module.compute_eval_metrics(eval_batches(labels), samples, 1)
    assert logs["eval_hi_charades_pass1"] == pytest.approx(sum(s.rewards.item() for s in samples) / len(samples))
    expected = eval_logs(rollouts_of(samples))
    assert {key: logs[key] for key in expected} == expected and expected["rarft/queries"] == len(labels)
    predictions = [prediction_from_example(e, r) for e, r in zip(examples[:21], responses, strict=True)]
    metrics, _ = compute_metrics(predictions, [rule_judgement(read(p, "ra_rft")) for p in predictions])
    assert logs["rarft/ra_iou/mIoU"] == pytest.approx(metrics.ra_iou.miou)
    assert logs["rarft/strong/refusal_f1"] == pytest.approx(metrics.by_difficulty["strong"].f1)


class RecordingWriter:
    """torch.utils.tensorboard's SummaryWriter as OpenRLHF's TensorboardLogger uses it, recording the scalars
    (the CPU test environment has no tensorboard package)."""

    scalars: dict[str, dict[int, float]] = {}

    def __init__(self, log_dir):
        RecordingWriter.scalars = {}

    def add_scalar(self, tag, value, step):
        assert math.isfinite(value), tag
        RecordingWriter.scalars.setdefault(tag, {})[step] = value

    def add_text(self, tag, text, step):
        pass

    def close(self):
        pass


class ActorGroup:
    """OpenRLHF's actor group, in-process: `fit` returns what PolicyModelActor.fit returns for a step, the mean of
    each `info` entry over the step's samples (ppo_actor.py averages them, sample-weighted) and a policy loss."""

    def __init__(self):
        self.experiences = []

    def async_run_method_batch(self, method_name, experience):
        self.experiences = experience
        return []

    def async_run_method(self, method_name, **kwargs):
        if method_name != "fit":
            return []
        keys = self.experiences[0].info
        status = {k: torch.cat([e.info[k].float() for e in self.experiences]).mean().item() for k in keys}
        return [{**status, "policy_loss": 0.0}]


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_fit(trainer_module, steps, eval_samples, eval_labels, group_size, tmp_path):
    """OpenRLHF's own PPOTrainer.fit loop, in this process: the trainer with its actor group, sample generator and
    experience maker replaced by in-process ones (no Ray, GPU or model); stepping, logging, evaluation and the
    TensorBoard logger are upstream's."""
    args = SimpleNamespace(
        algo=SimpleNamespace(
            kl=SimpleNamespace(target=None, init_coef=0.0),
            dynamic_filtering_enable=False,
            advantage=SimpleNamespace(estimator="group_norm"),
        ),
        logger=SimpleNamespace(
            wandb=SimpleNamespace(key=None, run_name="cpu"), tensorboard_dir=str(tmp_path / "tb"), logging_steps=1
        ),
        ckpt=SimpleNamespace(best_metric_key="", save_steps=float("inf"), path=str(tmp_path), load_enable=False),
        train=SimpleNamespace(num_episodes=1, dynamic_batch_enable=False),
        rollout=SimpleNamespace(n_samples_per_prompt=group_size, batch_size=len(steps[0]) // group_size),
        critic=SimpleNamespace(freezing_steps=-1),
        ds=SimpleNamespace(enable_sleep=False),
        eval=SimpleNamespace(steps=len(steps), temperature=0.6, n_samples_per_prompt=1),
    )
    trainer = object.__new__(trainer_module.PPOTrainer.__ray_metadata__.modified_class.__ray_actor_class__)
    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens: ["a sampled response"])
    strategy = SimpleNamespace(args=args)
    trainer_module.BasePPOTrainer.__init__(trainer, strategy, ActorGroup(), None, None, None, None, tokenizer)
    queue = list(steps)
    prompts = len(steps[0]) // group_size
    trainer.experience_maker = SimpleNamespace(make_experience_batch=lambda samples: samples)
    trainer.samples_generator = SimpleNamespace(
        generate_samples=lambda **kwargs: (queue.pop(0), None, prompts, not queue),
        generate_eval_samples=lambda **kwargs: eval_samples,
    )
    trainer.prompts_dataloader = Loader(prompts * len(steps))
    trainer.eval_dataloader = eval_batches(eval_labels)
    trainer.generate_kwargs = {}
    trainer.fit()
    return RecordingWriter.scalars


class Loader:
    """What fit reads of the prompt dataloader."""

    def __init__(self, length):
        self.length = length

    def __len__(self):
        return self.length

    def state_dict(self):
        return {}


# Four prompts of four rollouts a step: identical rollouts (a group that teaches nothing), a mixed relevant group,
# and two irrelevant groups that mostly copy the query into the correction (an exploit, at every step).
GROUPS = (
    ("oracle",) * 4,
    ("oracle", "whole_video", "empty", "always_refuse"),
    ("copy_correction", "copy_correction", "whole_video", "empty"),
    ("copy_correction", "oracle", "hedge", "multi_answer"),
)


@pytest.fixture
def openrlhf_lines(trainer_module):
    """The lines OpenRLHF's trainer logger and rarft's warnings print."""
    records = Records()
    loggers = [logging.getLogger(TRAINER_MODULE), logging.getLogger("openrlhf")]
    for logger in loggers:
        logger.addHandler(records)
    yield records.lines
    for logger in loggers:
        logger.removeHandler(records)


def test_a_run_through_openrlhfs_fit_logs_the_task_and_warns_about_an_exploit(
    trainer_module, examples, tokenizer, tmp_path, monkeypatch, openrlhf_lines
):
    import ray

    for name in ("RARFT_VARIANT", "RARFT_CORRECTION", "RARFT_REWARD_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ray, "get", lambda refs: refs)  # the in-process actor group returns values, not refs
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    tensorboard.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", tensorboard)

    labels = [example.label for example in examples]
    chosen = [x for x in labels if x.relevant][:2] + [x for x in labels if not x.relevant][:2]
    assert [label.relevant for label in chosen] == [True, True, False, False]
    step_labels = [label for label in chosen for _ in range(4)]
    responses = [r for label, group in zip(chosen, GROUPS, strict=True) for r in policy_responses([label] * 4, group)]
    samples = samples_of(step_labels, responses, tokenizer)
    eval_labels = labels[:21]
    eval_samples = samples_of(eval_labels, policy_responses(eval_labels, POLICY_CYCLE), tokenizer)
    scalars = run_fit(trainer_module, [samples] * 3, eval_samples, eval_labels, 4, tmp_path)

    steps = [line for line in openrlhf_lines if "Global step" in line]
    assert len(steps) == 3
    status = ast.literal_eval(steps[0].split(": ", 1)[1])  # the dict OpenRLHF prints
    assert status["rarft/monitor/copied_correction"] == 5 / 8  # of the irrelevant rollouts
    assert status["rarft/monitor/whole_video"] == pytest.approx(2 / 8)  # of the rollouts that answered
    assert status["rarft/zero_variance_groups"] == 0.25
    assert "rarft/copied_correction" not in status and "rarft/ra_iou" in status  # the monitor replaces its input
    warnings = [line for line in openrlhf_lines if "exploit monitor" in line]
    assert len(warnings) == 1 and "copied_correction" in warnings[0] and "(steps 1-3" in warnings[0]
    assert "counter: --rarft.correction gain" in warnings[0]
    (evaluation,) = [line for line in openrlhf_lines if "Evaluation completed" in line]
    assert "'rarft/ra_iou/mIoU'" in evaluation and "'rarft/strong/refusal_f1'" in evaluation

    assert set(scalars["train/rarft/monitor/copied_correction"]) == {1, 2, 3}
    assert scalars["train/rarft/zero_variance_groups"][2] == 0.25
    expected = eval_logs(rollouts_of(eval_samples))
    for key in ("rarft/ra_iou/R0.5", "rarft/ra_iou/mIoU", "rarft/f1/average", "rarft/weak/f1/average"):
        assert scalars[f"eval/{key}"] == {3: pytest.approx(expected[key])}, key
    assert "eval/rarft/format_compliance" in scalars and "eval/eval_hi_charades_pass1" in scalars
    print("\n".join([*steps[:1], *warnings, evaluation]))  # what the run prints (pytest -s shows it)


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from support.import_stand_ins import install_import_stand_ins
install_import_stand_ins()
import ray.cloudpickle
import openrlhf.trainer.ppo_trainer as module
open({blob!r}, "wb").write(ray.cloudpickle.dumps(module.PPOTrainer.__ray_metadata__.modified_class))
"""
WORKER = """
import inspect, json, sys
sys.path.insert(0, {tests!r})
from support.import_stand_ins import install_import_stand_ins
install_import_stand_ins()
from rarft_plugin.launch.upstream import TRAINER_MODULE, setup_worker
setup_worker()  # what Ray runs first in every worker of rarft-train (worker_process_setup_hook)
imported_before = TRAINER_MODULE in sys.modules
import ray.cloudpickle
trainer = ray.cloudpickle.loads(open({blob!r}, "rb").read())

def rarft_wrapped(function):  # rarft's wrapper somewhere under Ray's tracing and torch.no_grad wrappers
    while not function.__code__.co_filename.endswith("upstream.py"):
        if not hasattr(function, "__wrapped__"):
            return False
        function = function.__wrapped__
    return True

evaluate = inspect.unwrap(trainer.evaluate)
import openrlhf.trainer.ppo_trainer_async as asynchronous
print(json.dumps({{
    "imported_before": imported_before,
    "eval": rarft_wrapped(evaluate.__globals__["compute_eval_metrics"]),
    "step": rarft_wrapped(trainer.train_step),
    "async_eval": rarft_wrapped(asynchronous.compute_eval_metrics),
}}))
"""


def test_the_trainer_class_as_ray_ships_it_runs_the_wrapped_functions(tmp_path):
    """The driver pickles the PPOTrainer actor class (Ray pickles it by value: its module name is the ActorClass);
    a worker whose setup hook ran unpickles it and finds the wrapped evaluation and step functions."""
    tests, blob = str(Path(__file__).parent), str(tmp_path / "trainer.pkl")
    for script in (DRIVER, WORKER):
        done = subprocess.run(
            [sys.executable, "-c", script.format(tests=tests, blob=blob)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
    checks = json.loads(done.stdout.strip().splitlines()[-1])
    assert checks == {"imported_before": False, "eval": True, "step": True, "async_eval": True}
