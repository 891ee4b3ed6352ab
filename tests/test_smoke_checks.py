"""The GPU smoke's checks (tests/support/smoke_checks.py) on CPU, against the log of a real run: the tiny Qwen3-VL
smoke on an H100 (2026-12-06; its two step lines and two evaluation lines as OpenRLHF 0.11.2 printed them). The real
log passes; each way a run can go wrong, written into that log, fails."""

import re
from pathlib import Path

import pytest
from support.smoke_checks import check_evaluations, check_steps

SMOKE_LOG = Path(__file__).parent / "support" / "openrlhf_0_11_2_qwen3_vl_smoke.log"


def _set(key: str, value: str, only_first: bool = False):
    """An edit of the log: `key`'s value becomes `value` (on the first line holding it, or every one)."""
    return lambda log: re.sub(rf"'{re.escape(key)}': [^,}}]+", f"'{key}': {value}", log, count=int(only_first))


def _drop(key: str):
    return lambda log: re.sub(rf"'{re.escape(key)}': [^,}}]+, ", "", log)


@pytest.fixture(scope="module")
def stand_in(tiny_models):
    return tiny_models("qwen3_vl")  # the smoke's model: the same config, so the same masked share


def test_the_real_smoke_log_passes(stand_in):
    log = SMOKE_LOG.read_text()
    check_steps(log, [1, 2], stand_in)
    check_evaluations(log, [1, 2])


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_set("vllm_kl", "0.02", only_first=True), id="rollout-and-training-disagree"),
        pytest.param(_set("vllm_kl", "0.0005", only_first=True), id="no-mask-share-on-a-random-model"),
        pytest.param(_set("format", "1.5", only_first=True), id="reward-out-of-bounds"),
        pytest.param(_set("rarft/malformed", "0.0625", only_first=True), id="special-token-sampled"),
        pytest.param(_drop("rarft/monitor/no_answer"), id="monitor-missing"),
        pytest.param(_set("rarft/answered", "0.25", only_first=True), id="answers-but-no-whole-video-rate"),
        pytest.param(_drop("rarft/zero_variance_groups"), id="zero-variance-share-missing"),
        pytest.param(lambda log: log.split("\n", 1)[1], id="a-step-missing"),
    ],
)
def test_a_run_gone_wrong_fails_the_step_checks(stand_in, edit):
    log = edit(SMOKE_LOG.read_text())
    assert log != SMOKE_LOG.read_text()
    with pytest.raises(AssertionError):
        check_steps(log, [1, 2], stand_in)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_set("rarft/queries", "8.0"), id="fewer-evaluated-queries"),
        pytest.param(_set("rarft/ra_iou/mIoU", "1.5", only_first=True), id="miou-out-of-range"),
        pytest.param(lambda log: re.sub(r"'rarft/(strong|moderate|weak)/[^']*': [^,}]+,? ?", "", log), id="no-level"),
    ],
)
def test_a_run_gone_wrong_fails_the_evaluation_checks(edit):
    log = edit(SMOKE_LOG.read_text())
    assert log != SMOKE_LOG.read_text()
    with pytest.raises(AssertionError):
        check_evaluations(log, [1, 2])
