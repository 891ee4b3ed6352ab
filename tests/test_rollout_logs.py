"""The per-rollout score and extra logs: what each exploit policy sets, the score's meaning, one encoder call."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rarft_eval.exploits import CORRECTION_TAG, POLICIES, neighbours
from rarft_plugin.dataset import load_examples
from rarft_plugin.prompts import TEMPLATES, build_messages, instruction
from rarft_plugin.reward_options import RewardOptions
from rarft_plugin.rewards import score_many
from rarft_plugin.rollout_logs import ROLLOUT_LOG_NAMES, compliance_template, score_with_logs
from rarft_plugin.schema import Label

QUERIES = 40  # the first HI-Charades items: 20 relevant, 20 hard-irrelevant queries
SIGNALS = ("no_answer", "multi_answer", "whole_video", "special_token", "copied_correction", "templated_explain")


@pytest.fixture(scope="module")
def labels(official_data):
    examples, _ = load_examples(official_data / "hi_vtg_charades.json")
    return [example.label for example in examples[:QUERIES]]


def policy_logs(labels, sbert, policy_name, variant="paper"):
    """Mean score and extra logs of one rarft-audit policy over the queries; similarity logs over irrelevant ones."""
    policy = next(p for p in POLICIES if p.name == policy_name)
    responses = [
        policy.write(label, CORRECTION_TAG[variant], n) for label, n in zip(labels, neighbours(labels), strict=True)
    ]
    template = "ra_rft" if variant == "paper" else "ra_rft_released"
    prompts = [instruction(template, label.query) for label in labels]
    scored = score_with_logs(responses, labels, prompts, variant=variant, similarity=sbert)
    irrelevant = [s for s, label in zip(scored, labels, strict=True) if not label.relevant]
    means = {name.split("/")[1]: sum(s.logs[name] for s in scored) / len(scored) for name in ROLLOUT_LOG_NAMES}
    for name in ("copied_correction", "templated_explain"):
        means[name] = sum(s.logs[f"rarft/{name}"] for s in irrelevant) / len(irrelevant)
    means["score"] = sum(s.score for s in scored) / len(scored)
    return means


# Each policy of rarft-audit, the least share of its rollouts each signal it must raise reaches (the two similarity
# signals: of its irrelevant rollouts), and its mean score (the share of rollouts that do the task). Every other
# signal stays 0; the oracle raises none.
@pytest.mark.parametrize(
    "policy, raised, score",
    [
        ("oracle", {}, 1.0),
        ("copy_correction", {"copied_correction": 1.0}, 1.0),
        ("templated_refusal", {"templated_explain": 1.0}, 1.0),
        ("query_in_answer", {"templated_explain": 0.9}, 1.0),
        ("whole_video", {"whole_video": 1.0}, 0.0),
        # a generic refusal resembles the template on some queries
        ("multi_answer", {"multi_answer": 1.0, "copied_correction": 1.0, "templated_explain": 0.2}, 0.5),
        ("empty", {"no_answer": 1.0}, 0.0),
        ("always_refuse", {"copied_correction": 1.0, "templated_explain": 0.2}, 0.5),
    ],
)
@pytest.mark.parametrize("variant", ["paper", "released"])
def test_each_exploit_policy_raises_its_signal(labels, sbert, policy, raised, score, variant):
    means = policy_logs(labels, sbert, policy, variant)
    assert {name: means[name] >= raised.get(name, 0.0) for name in SIGNALS} == dict.fromkeys(SIGNALS, True)
    assert {name: means[name] for name in SIGNALS if name not in raised} == dict.fromkeys(
        set(SIGNALS) - set(raised), 0.0
    )
    assert means["score"] == score


@pytest.mark.parametrize(
    "response, relevant, score",
    [
        ("<think>t</think> <answer>2.00 to 6.00</answer> <correct></correct>", True, 1.0),  # IoU 1
        ("<think>t</think> <answer>2.00 to 4.00</answer> <correct></correct>", True, 1.0),  # IoU 0.5: counts
        ("<think>t</think> <answer>2.00 to 3.90</answer> <correct></correct>", True, 0.0),  # IoU 0.475
        ("<think>t</think> <answer>No such moment.</answer> <correct>q</correct>", True, 0.0),  # refused a relevant
        ("<think>t</think> <answer>No such moment.</answer> <correct>q</correct>", False, 1.0),
        ("<answer>No such moment.", False, 0.0),  # cut off: no answer stated
        ("<think>t</think> <answer></answer> <correct></correct>", False, 0.0),  # an empty block states nothing
        ("No such moment.", False, 0.0),  # the rule reading calls it a refusal, but no answer block
        ("<answer>2.00 to 6.00</answer>", True, 1.0),  # out of format: the score is the task only
        ("<answer>No such moment.</answer><|im_end|>", False, 0.0),  # a special token
    ],
)
def test_the_score_is_one_iff_the_stated_answer_does_the_task(response, relevant, score, sbert):
    label = Label(
        relevant=relevant, duration=10.0, query="a man opens a door", timestamp=(2.0, 6.0) if relevant else None
    )
    (scored,) = score_with_logs([response], [label], [""], similarity=sbert)
    assert scored.score == score


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("purpose", ["train", "eval"])
def test_compliance_is_checked_against_the_template_the_prompt_was_built_with(template, purpose):
    query = "a man opens a door"
    messages = build_messages(template, query, purpose=purpose)
    prompt = "\n".join(item["text"] for message in messages for item in message["content"])
    assert compliance_template(prompt, query, "released") == template
    assert compliance_template("a prompt written by hand", query, "released") == "ra_rft_released"


class CountingSimilarity:
    """The packaged encoder, counting calls to it."""

    def __init__(self, inner):
        self.inner, self.calls, self.model_path = inner, 0, inner.model_path

    def cosine_pairs(self, pairs):
        self.calls += 1
        return self.inner.cosine_pairs(pairs)


@pytest.mark.parametrize("policy", ["oracle", "copy_correction", "templated_refusal", "empty"])
@pytest.mark.parametrize(
    "options",
    [RewardOptions(), RewardOptions(correction="gain", explain="debiased"), RewardOptions(correction="contrastive")],
)
def test_one_encoder_call_per_rollout_and_rewards_unchanged(labels, sbert, policy, options):
    """Every score option of `RewardOptions` (what the OpenRLHF entries pass) reaches the rewards."""
    write = next(p for p in POLICIES if p.name == policy).write
    for label, neighbour in zip(labels[:8], neighbours(labels)[:8], strict=True):
        response = write(label, "correct", neighbour)
        counting = CountingSimilarity(sbert)
        (scored,) = score_with_logs([response], [label], [""], **options.score_options(counting))
        assert counting.calls <= 1
        expected = score_many([response], [label], **options.score_options(sbert))[0]
        assert scored.rewards == pytest.approx(expected, abs=1e-6)


texts = st.text(alphabet=st.sampled_from(list("<>/|answerthikcoNIL 0123456789.to-_:\n")), max_size=300)


@given(response=texts, relevant=st.booleans())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_adversarial_output_never_raises_and_stays_in_bounds(response, relevant, sbert):
    label = Label(
        relevant=relevant,
        duration=30.0,
        query="a man opens a door",
        timestamp=(2.0, 6.0) if relevant else None,
        answer_refusal="" if relevant else "Nobody opens a door.",
        query_relevant="a man closes a door",
    )
    (scored,) = score_with_logs([response], [label], [instruction("ra_rft", label.query)], similarity=sbert)
    assert scored.score in (0.0, 1.0)
    assert all(0.0 <= scored.logs[name] <= 1.0 for name in ROLLOUT_LOG_NAMES)


def test_megabyte_outputs_are_read_quickly(sbert):
    label = Label(relevant=False, duration=30.0, query="q", answer_refusal="No.", query_relevant="r")
    hostile = [
        "<answer>" * 100_000 + "</answer>" * 100_000,
        "<answer>" + "1 to 2 " * 150_000 + "</answer>" + "<correct>" + "x" * 1_000_000 + "</correct>",
        "<|" * 500_000,
        "<answer></answer>" * 60_000,
    ]
    started = time.perf_counter()
    scored = score_with_logs(hostile, [label] * len(hostile), ["p" * 100_000] * len(hostile), similarity=sbert)
    assert [s.logs["rarft/multi_answer"] for s in scored] == [0.0, 0.0, 0.0, 1.0]
    # A generous bound: quadratic behaviour on any of these would take minutes.
    assert time.perf_counter() - started < 20
