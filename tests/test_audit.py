"""rarft-audit (eval/audit.py) and its exploit policies (eval/exploits.py)."""

import dataclasses
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_eval import audit
from rarft_eval.audit import (
    ORACLE,
    at_ratio,
    find_flags,
    groups,
    load_labels,
    main,
    margin_share,
    policy_table,
    score_policies,
    settings_from,
    summarise,
)
from rarft_eval.blind import FITTED_POLICIES, fit_baselines, refuses
from rarft_eval.exploits import CORRECTION_TAG, POLICIES, Setting, first_sentence, neighbours, paraphrase, partial_fix
from rarft_plugin.errors import DataError
from rarft_plugin.parsing import extract_segment, parse_response
from rarft_plugin.rewards import REWARD_NAMES, parse_weights, reward_bounds, score_many
from rarft_plugin.schema import Label

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "rarft_plugin" / "samples" / "hi_vtg_charades_sample.json"
WEIGHTS = parse_weights(None)
ALL_SETTINGS = settings_from("paper,released", "similarity,contrastive,gain")
EXPLOITS = [p for p in POLICIES if p.name != ORACLE]
BLIND = [p for p in POLICIES if not p.sees_relevance]


def label(relevant, **fields):
    base = dict(
        relevant=relevant,
        duration=30.0,
        query="a man cuts a steak",
        answer_time="2.00 to 6.00",
        timestamp=(2.0, 6.0) if relevant else None,
        answer_refusal="He cooks pasta; nobody cuts a steak.",
        query_relevant="a man cooks pasta",
    )
    return Label(**{**base, **fields})


# ---- the policies ----------------------------------------------------------------------------
@pytest.mark.parametrize("policy", BLIND, ids=lambda p: p.name)
def test_blind_policies_never_read_the_relevance(policy):
    """Same query, duration and item span: same response, whatever the relevance and the other references."""
    relevant = label(True, answer_refusal="", query_relevant="a man cuts a steak")
    irrelevant = label(False, answer_refusal="Something else entirely.", query_relevant="a woman reads")
    for tag in CORRECTION_TAG.values():
        assert policy.write(relevant, tag, irrelevant) == policy.write(irrelevant, tag, relevant)


@pytest.mark.parametrize("policy", [p for p in POLICIES if p.sees_relevance], ids=lambda p: p.name)
def test_reference_policies_change_only_irrelevant_queries(policy):
    oracle = POLICIES[0]
    relevant, other = label(True), label(False, answer_refusal="Another video's refusal.")
    assert policy.write(relevant, "correct", other) == oracle.write(relevant, "correct", other)


@pytest.mark.parametrize("variant, tag", [("paper", "<correct>"), ("released", "<correction>")])
def test_oracle_writes_the_template_each_variant_checks(variant, tag):
    rows = score_many(
        [POLICIES[0].write(label(r), CORRECTION_TAG[variant], label(r)) for r in (True, False)],
        [label(True), label(False)],
        variant=variant,
        similarity=FakeSimilarity(),
    )
    assert [row["format"] for row in rows] == [1.0, 1.0]
    assert tag in POLICIES[0].write(label(False), CORRECTION_TAG[variant], label(False))


def test_neighbours_skip_the_same_refusal_and_empty_ones():
    a, b, empty = (label(False, answer_refusal=text) for text in ("A", "B", ""))
    assert [n.answer_refusal for n in neighbours([a, empty, a, b])] == ["B", "A", "B", "A"]
    assert neighbours([a]) == [a] and neighbours([]) == [] and neighbours([empty, empty]) == [empty, empty]


def plain_neighbours(labels):
    """The definition, searched in quadratic time."""
    out = []
    for index, this in enumerate(labels):
        later = [labels[(index + step) % len(labels)] for step in range(1, len(labels))]
        out.append(next((o for o in later if o.answer_refusal and o.answer_refusal != this.answer_refusal), this))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["", "A", "B", "C"]), max_size=12))
def test_neighbours_follow_their_definition(texts):
    labels = [label(False, answer_refusal=text, query=f"q{i}") for i, text in enumerate(texts)]
    assert neighbours(labels) == plain_neighbours(labels)


class FakeSimilarity:
    """Deterministic cosines in [-1, 1] from a hash of the pair; 1 for identical texts."""

    def cosine_pairs(self, pairs):
        return [1.0 if a == b else zlib.crc32(f"{a}\x00{b}".encode()) / 2**31 - 1.0 for a, b in pairs]


TAGS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<correct>",
    "</correct>",
    "<correction>",
    "</correction>",
    "NIL",
    "2 to 6",
    "<|video_pad|>",
    "nan",
    "\n",
    "😀",
    "{query}",
    "%s",
]
QUERIES = st.one_of(
    st.text(min_size=1, max_size=80), st.lists(st.sampled_from(TAGS), min_size=1, max_size=8).map(" ".join)
).filter(str.strip)


@settings(max_examples=150, deadline=None)
@given(QUERIES, st.booleans(), st.sampled_from(ALL_SETTINGS), st.one_of(st.none(), st.floats(0.5, 1e6)))
def test_every_policy_is_scored_in_bounds_whatever_the_query_says(query, relevant, setting, duration):
    """A query is model-visible text that policies paste into their responses: adversarial output."""
    target = label(relevant, query=query, duration=duration, timestamp=(0.0, 0.5) if relevant else None)
    responses = [p.write(target, CORRECTION_TAG[setting.variant], target) for p in POLICIES]
    rows = score_many(
        responses,
        [target] * len(POLICIES),
        variant=setting.variant,
        correction=setting.correction,
        similarity=FakeSimilarity(),
    )
    bounds = reward_bounds(setting.variant, setting.correction)
    for row in rows:
        for name, (low, high) in bounds.items():
            assert low - 1e-9 <= row[name] <= high + 1e-9
        assert math.isfinite(row["total"])


# ---- honest-correction and style classes (eval.exploits) ---------------------------------------
@pytest.mark.parametrize(
    "query, reference, expected",
    [
        ("person closes a window.", "person opens a door.", "person opens a window."),  # 1 of 2 edits
        ("a b c d", "a x y d", "a x c d"),  # a two-word replacement: two edits, the first restored
        ("person takes a cup then sits.", "person takes a cup.", None),  # one edit (a deletion): none partial
        ("person closes a door.", "person opens a door.", None),
        ("Person opens a door.", "person opens a door.", None),  # case and punctuation are no edit
    ],
)
def test_partial_fix_restores_half_of_the_edits(query, reference, expected):
    assert partial_fix(query, reference) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("person puts a cup on the couch.", "someone places a mug on the sofa."),
        ("A person closes the door.", "Someone shuts the door."),
        ("a dog barks.", "In the video, a dog barks."),
        ("personal laptop", "personal computer"),  # whole words only
    ],
)
def test_paraphrase_swaps_synonyms_or_adds_a_template(text, expected):
    assert paraphrase(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("This query does not align.The man sits.", "This query does not align."),
        ("No stop here", "No stop here"),
        ("It lasts 9.3 to 14.4 s. Then more.", "It lasts 9.3 to 14.4 s."),
    ],
)
def test_first_sentence(text, expected):
    assert first_sentence(text) == expected


# ---- fitted baselines (eval.blind) -----------------------------------------------------------------
def fitted_file(count=12):
    """`count` videos, each with a relevant query and an irrelevant one, refusals and q_r of their own."""
    labels, videos = [], []
    for i in range(count):
        common = dict(duration=20.0, answer_time="2.00 to 6.00", answer_refusal=f"Video {i} shows cooking, not this.")
        labels += [
            Label(
                relevant=True,
                query=f"person {i} cooks",
                timestamp=(2.0, 6.0),
                query_relevant=f"person {i} cooks",
                **common,
            ),
            Label(relevant=False, query=f"person {i} dances", query_relevant=f"person {i} cooks", **common),
        ]
        videos += [f"v{i}.mp4"] * 2
    return labels, videos


FIT_SETTINGS = (Setting("paper"), Setting("released", "gain", "debiased"))


def fit(labels, videos, scores=None, settings=FIT_SETTINGS):
    return fit_baselines(
        labels,
        videos,
        list(settings),
        similarity=FakeSimilarity(),
        ratio=(1, 3),
        weights=WEIGHTS,
        text_scores=np.full(len(labels), 0.5) if scores is None else scores,
    )


def test_fitted_texts_are_chosen_out_of_fold_a_query_never_sees_its_own_video_s_references():
    labels, videos = fitted_file()
    fitted = fit(labels, videos)
    for responses in fitted.responses["paper"].values():
        for i, response in enumerate(responses):
            own = {labels[i].answer_refusal, labels[i].query_relevant} - {labels[i].query}
            assert not any(f">{text}<" in response for text in own), response


def test_fitted_blind_policies_do_not_read_their_own_query_s_label():
    """Flipping a video's relevance and references changes nothing that video's blind policies write."""
    labels, videos = fitted_file()
    before = fit(labels, videos)
    flipped = list(labels)
    flipped[0] = Label(relevant=False, duration=20.0, query=labels[0].query, answer_refusal="Another text entirely.")
    flipped[1] = Label(relevant=True, duration=20.0, query=labels[1].query, timestamp=(0.0, 1.0))
    after = fit(flipped, videos)
    for name in ("blind_refusal", "text_decision"):
        for setting in before.responses:
            assert before.responses[setting][name][:2] == after.responses[setting][name][:2]


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_decision_only_grounds_relevant_queries_and_refuses_the_others(variant):
    labels, videos = fitted_file()
    setting = Setting(variant)
    fitted = fit(labels, videos, settings=[setting])
    rows = score_many(
        fitted.responses[setting.name]["decision_only"], labels, variant=variant, similarity=FakeSimilarity()
    )
    assert all(row["format"] == 1.0 for row in rows)
    assert all((row["refuse_iou"] > 0) for row, label in zip(rows, labels, strict=True) if label.relevant)
    assert all(row["refuse_iou"] == 1.0 for row, label in zip(rows, labels, strict=True) if not label.relevant)


def test_text_decision_refuses_where_the_classifier_says_irrelevant():
    labels, videos = fitted_file()
    scores = np.array([0.9 if i % 4 == 0 else 0.01 for i in range(len(labels))])
    fitted = fit(labels, videos, scores=scores, settings=[Setting("paper")])
    answers = [parse_response(response).answer for response in fitted.responses["paper"]["text_decision"]]
    refusing = [extract_segment(answer) is None for answer in answers]
    assert refusing == refuses(scores, [not label.relevant for label in labels], (1, 3))


@pytest.mark.parametrize(
    "scores, irrelevant, ratio, expected",
    [
        ([0.5, 0.2], [False, True], (1, 1), [False, False]),  # the file's balance is the mix's: P > 0.5 refuses
        ([0.3, 0.2], [False, True], (1, 3), [True, False]),  # 1:3 triples the odds: P > 0.25 refuses
        ([0.3, 0.2], [False, False, True], (1, 1), [False, False]),  # file 2:1, mix 1:1: P > 1/3 refuses
        ([float("nan")], [False, True], (1, 3), [False]),  # no classifier: grounds
    ],
)
def test_the_text_decision_moves_the_classifier_to_the_training_mix_prior(scores, irrelevant, ratio, expected):
    assert refuses(np.array(scores), irrelevant, ratio) == expected


@pytest.mark.parametrize("setting", ["paper+contrastive", "released+contrastive"])
def test_the_fitted_blind_refusal_beats_the_fixed_one_where_copying_the_query_is_punished(hi_vtg, setting):
    """always_refuse copies the query into ĉ; the fitted policy chooses a text that the correction does not punish."""
    policies = hi_vtg[0][setting]["policies"]
    assert policies["blind_refusal"]["total_at_ratio"]["mean"] > policies["always_refuse"]["total_at_ratio"]["mean"]
    assert policies["decision_only"]["share"] > policies["blind_refusal"]["share"]


# ---- accounting ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "relevant, irrelevant, ratio, expected",
    [
        (2.0, 4.0, (1, 3), 3.5),
        (2.0, 4.0, (1, 1), 3.0),
        (2.0, None, (1, 0), 2.0),
        (None, 4.0, (1, 3), None),
        (2.0, None, (1, 3), None),
        (None, 4.0, (0, 1), 4.0),
    ],
)
def test_total_at_a_ratio(relevant, irrelevant, ratio, expected):
    assert at_ratio(relevant, irrelevant, ratio) == expected


def test_summary_margins_are_oracle_minus_policy_over_the_range():
    labels = [label(True, difficulty="original"), label(False, difficulty="strong"), label(False, difficulty="weak")]

    def row(value):
        return {**dict.fromkeys(REWARD_NAMES, value), "total": 4 * value}

    scores = {"paper": {ORACLE: [row(1.0), row(1.0), row(0.5)], "cheat": [row(1.0), row(0.0), row(0.5)]}}
    result = summarise(labels, scores, [Setting("paper")], weights=WEIGHTS, ratio=(1, 3))["paper"]
    cheat = result["policies"]["cheat"]
    widths = {name: high - low for name, (low, high) in reward_bounds("paper").items()}  # explain [-2, 2]: 4
    assert result["ranges"] == {**widths, "total": sum(WEIGHTS[name] * widths[name] for name in REWARD_NAMES)}
    assert cheat["groups"]["irrelevant"]["explain"] == {"mean": 0.25, "margin": 0.5, "margin_fraction": 0.125}
    assert cheat["groups"]["weak"]["format"]["margin"] == 0.0 and "original" in cheat["groups"]
    # total at 1:3: oracle (4 + 3*3) / 4 = 3.25, cheat (4 + 3*1) / 4 = 1.75
    assert cheat["total_at_ratio"] == {"mean": 1.75, "margin": 1.5, "margin_fraction": 1.5 / 8}


def entry(mean, margin):
    return {"mean": mean, "margin": margin, "margin_fraction": None}


@pytest.mark.parametrize(
    "share, video_free, expected",
    [
        (0.44, ["cheat"], ["video-free policy cheat keeps 0.44 of the margin at 1:3 (> 0.10)"]),
        (0.10, ["cheat"], []),  # at the threshold: no flag
        (0.44, [], []),  # a policy that sees the video may keep much of it
        (None, ["cheat"], []),  # no margin to share (oracle = empty)
    ],
)
def test_a_video_free_policy_keeping_more_than_a_tenth_of_the_margin_is_flagged(share, video_free, expected):
    policy = {"groups": {}, "total_at_ratio": entry(3.0, 1.0), "share": share}
    summary = {"paper": {"policies": {ORACLE: {"groups": {}, "total_at_ratio": entry(4.0, 0.0)}, "cheat": policy}}}
    assert [flag.split(": ", 1)[1] for flag in find_flags(summary, (1, 3), video_free)] == expected


@pytest.mark.parametrize(
    "value, oracle, empty, expected",
    [(2.0, 3.0, 1.0, 0.5), (1.0, 3.0, 1.0, 0.0), (0.0, 3.0, 1.0, -0.5), (3.0, 3.0, 1.0, 1.0), (2.0, 1.0, 1.0, None)],
)
def test_the_share_of_the_margin_is_measured_from_empty_blocks(value, oracle, empty, expected):
    assert margin_share(value, oracle, empty) == expected


@pytest.mark.parametrize(
    "component_margin, total_margin, expected",
    [
        (0.2, 1.0, []),  # the oracle is ahead everywhere
        (0.0, 1.0, []),  # a tie on a component is no flag (format is 1 for most policies)
        (-1e-9, 1.0, []),  # rounding
        (-0.1, 1.0, ["beats the oracle on explain (difficulty strong)"]),
        (0.2, 0.0, ["earns at least the oracle's total at 1:3"]),  # a tie on the total is: nothing to learn
        (0.2, -0.5, ["earns at least the oracle's total at 1:3"]),
        (None, None, []),  # a group or ratio the file cannot fill
    ],
)
def test_flags(component_margin, total_margin, expected):
    def policy(margin, total):
        return {"groups": {"strong": {"explain": entry(0.5, margin)}}, "total_at_ratio": entry(3.0, total)}

    summary = {"paper": {"policies": {ORACLE: policy(0.0, 0.0), "cheat": policy(component_margin, total_margin)}}}
    flags = find_flags(summary, (1, 3))
    assert len(flags) == len(expected) and all(text in flag for text, flag in zip(expected, flags, strict=True))


def test_groups_follow_the_taxonomy_order():
    labels = [label(False, difficulty="weak"), label(True, difficulty="original"), label(False, difficulty="strong")]
    assert list(groups(labels)) == ["all", "relevant", "irrelevant", "original", "strong", "weak"]


@pytest.mark.parametrize(
    "variants, corrections", [("paper,trl", "similarity"), ("", "similarity"), ("paper", "copyproof")]
)
def test_unknown_settings_are_refused(variants, corrections):
    with pytest.raises(Exception, match="expected a comma-separated list"):
        settings_from(variants, corrections)


# ---- the released files, with the packaged MiniLM --------------------------------------------
@pytest.fixture(scope="module")
def hi_vtg(official_data, sbert):
    """The first 60 items (120 queries, every difficulty) of HI-Charades, every setting."""
    loaded, _ = load_labels(official_data / "hi_vtg_charades.json")
    labels, videos = [q.label for q in loaded[:120]], [q.video for q in loaded[:120]]
    fitted = fit_baselines(
        labels,
        videos,
        ALL_SETTINGS,
        similarity=sbert,
        ratio=(1, 3),
        weights=WEIGHTS,
        text_scores=np.full(len(labels), 0.5),
    )
    scores = score_policies(labels, ALL_SETTINGS, similarity=sbert, weights=WEIGHTS, fitted=fitted)
    summary = summarise(labels, scores, ALL_SETTINGS, weights=WEIGHTS, ratio=(1, 3))
    return summary, find_flags(summary, (1, 3))


@pytest.mark.parametrize("setting", [s.name for s in ALL_SETTINGS])
@pytest.mark.parametrize("policy", [p.name for p in EXPLOITS])
def test_the_oracle_beats_every_exploit_on_the_total_at_the_papers_ratio_or_it_is_flagged(hi_vtg, setting, policy):
    summary, flags = hi_vtg
    total = summary[setting]["policies"][policy]["total_at_ratio"]
    flagged = any(flag.startswith(f"{setting}: {policy} ") for flag in flags)
    assert total["margin"] > 0 or flagged
    assert not flagged  # on the released file, none is: this pins it


# (policy, group, component): where each exploit loses to the oracle, in every setting.
WHERE_EACH_EXPLOIT_LOSES = [
    ("copy_correction", "irrelevant", "correction"),
    ("generic_correction", "irrelevant", "correction"),
    ("generic_refusal", "irrelevant", "explain"),
    ("query_in_answer", "irrelevant", "explain"),
    ("templated_refusal", "irrelevant", "explain"),
    ("other_refusal", "irrelevant", "explain"),
    ("always_refuse", "relevant", "refuse_iou"),
    ("whole_video", "irrelevant", "refuse_iou"),
    ("whole_video", "relevant", "refuse_iou"),
    ("hedge", "irrelevant", "refuse_iou"),
    ("multi_answer", "relevant", "refuse_iou"),
    ("empty", "irrelevant", "explain"),
    ("empty", "relevant", "refuse_iou"),
    ("partial_correction", "irrelevant", "correction"),
    ("opener_refusal", "irrelevant", "explain"),
    ("blind_refusal", "relevant", "refuse_iou"),
    ("decision_only", "relevant", "refuse_iou"),
    ("decision_only", "irrelevant", "explain"),
]


@pytest.mark.parametrize("setting", [s.name for s in ALL_SETTINGS])
@pytest.mark.parametrize("policy, group, component", WHERE_EACH_EXPLOIT_LOSES)
def test_each_exploit_loses_where_expected(hi_vtg, setting, policy, group, component):
    assert hi_vtg[0][setting]["policies"][policy]["groups"][group][component]["margin"] > 0.05


def correction_of(summary, setting, policy):
    return summary[setting]["policies"][policy]["groups"]["irrelevant"]["correction"]


def test_copying_the_query_keeps_most_of_eq7_and_more_of_the_released_form(hi_vtg):
    """(cos+1)/2 halves the copy's margin, (1 − cos)/2 instead of 1 − cos: the same share of a range half as wide."""
    summary, _ = hi_vtg
    paper, released = (correction_of(summary, s, "copy_correction") for s in ("paper", "released"))
    assert 0.5 < paper["mean"] < 0.8  # the issue measured 0.65 on 400 queries
    assert released["mean"] > paper["mean"] and released["margin"] == pytest.approx(paper["margin"] / 2, abs=1e-6)
    assert released["margin_fraction"] == pytest.approx(paper["margin_fraction"], abs=1e-6)


@pytest.mark.parametrize("setting", ["paper+contrastive", "released+contrastive"])
def test_the_contrastive_correction_opens_the_copy_margin_and_the_oracle_still_scores_1(hi_vtg, setting):
    summary, _ = hi_vtg
    assert correction_of(summary, setting, ORACLE)["mean"] == pytest.approx(1.0, abs=1e-5)
    copy = correction_of(summary, setting, "copy_correction")
    assert copy["mean"] == pytest.approx(-1.0, abs=1e-5) and copy["margin_fraction"] == pytest.approx(1.0, abs=1e-5)
    plain = correction_of(summary, setting.split("+")[0], "copy_correction")
    assert copy["margin_fraction"] > 3 * plain["margin_fraction"]
    generic = correction_of(summary, setting, "generic_correction")
    assert (
        generic["margin_fraction"]
        > correction_of(summary, setting.split("+")[0], "generic_correction")["margin_fraction"]
    )


def test_ss_vtg_has_no_refusal_answers_so_the_paper_explain_reward_is_zero_for_every_policy(official_data, sbert):
    """SS-VTG: no refusal texts, so eq. 6 has no a_refusal; a shuffled query's q_r is its item's relevant query,
    when the item has one (591 of 1,860), and the correction reward applies to those only."""
    loaded, _ = load_labels(official_data / "ss_vtg_charades.json")
    labels = [q.label for q in loaded[:60]]
    chosen = [Setting("paper"), Setting("paper", "contrastive")]
    summary = summarise(
        labels, score_policies(labels, chosen, similarity=sbert, weights=WEIGHTS), chosen, weights=WEIGHTS, ratio=(1, 3)
    )
    with_reference = sum(bool(lab.query_relevant) for lab in labels if not lab.relevant)
    irrelevant = sum(not lab.relevant for lab in labels)
    assert 0 < with_reference < irrelevant
    for setting in ("paper", "paper+contrastive"):
        for policy in POLICIES:
            assert summary[setting]["policies"][policy.name]["groups"]["all"]["explain"]["mean"] == 0.0
        oracle = summary[setting]["policies"][ORACLE]["groups"]["irrelevant"]["correction"]["mean"]
        assert oracle == pytest.approx(with_reference / irrelevant, abs=1e-5)


# ---- the command line ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_report(tmp_path_factory, sbert):
    out = tmp_path_factory.mktemp("audit")
    assert main([str(SAMPLE), "--out", str(out)]) == 0
    return out, json.loads((out / "audit.json").read_text())


def test_cli_writes_json_markdown_and_plot(sample_report):
    out, report = sample_report
    assert report["data"]["queries"] == 8 and report["data"]["relevant"] == 4 and report["data"]["videos"] == 4
    assert list(report["settings"]) == [
        "paper",
        "paper+contrastive",
        "paper+gain",
        "released",
        "released+contrastive",
        "released+gain",
    ]
    assert [p["name"] for p in report["policies"]] == [p.name for p in POLICIES] + [p.name for p in FITTED_POLICIES]
    assert all("video-free policy" in flag for flag in report["flags"]) and report["ratio"] == [1, 3]
    assert set(report["baselines"]["choices"]) == set(report["settings"])
    assert report["leakage"]["queries"] == 8 and report["leakage"]["folds"] == 4  # one fold per video
    assert report["produced_by"]["model"] and len(report["data"]["sha256"]) == 64
    assert report["produced_by"]["command"][:2] == ["rarft-audit", str(SAMPLE)]
    markdown = (out / "audit.md").read_text()
    assert (
        "## Total reward at relevant:irrelevant = 1:3" in markdown
        and "## Every group: released+contrastive" in markdown
    )
    header = "paper | paper+contrastive | paper+gain | released | released+contrastive | released+gain |"
    assert f"| policy | decides relevance | {header}" in markdown
    assert f"| policy | decides relevance | video-free | {header}" in markdown
    assert "| `copy_correction` | reference |" in markdown and "| `text_decision` | query text | yes |" in markdown
    assert "## Text-only leakage: the query alone" in markdown
    assert (out / "audit_margins.png").read_bytes().startswith(b"\x89PNG")


def test_cli_reads_openrlhf_prompt_rows_as_the_released_file(sample_report, tmp_path, sbert):
    loaded, _ = load_labels(SAMPLE)
    rows = tmp_path / "train.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"input": [], "label": json.dumps(q.label.to_json()), "id": q.key, "video": f"/v/{q.video}"})
            + "\n"
            for q in loaded
        )
    )
    assert main([str(rows), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert report["settings"] == sample_report[1]["settings"]


def test_cli_never_raises_on_labels_no_tokenizer_takes(tmp_path, sbert):
    """Labels of prompt rows holding lone surrogates and control characters (the launcher refuses such
    rows; the audit scores them, as the reward must, without raising)."""
    loaded, _ = load_labels(SAMPLE)
    odd = [
        dataclasses.replace(q.label, query=q.label.query + " \ud800", query_relevant="\x1b[0m" + q.label.query_relevant)
        for q in loaded
    ]
    rows = tmp_path / "train.jsonl"
    rows.write_text("".join(json.dumps({"label": json.dumps(lab.to_json())}) + "\n" for lab in odd))
    assert main([str(rows), "--out", str(tmp_path / "out"), "--variant", "paper", "--correction", "similarity"]) == 0
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["data"]["queries"] == len(odd)


def test_flags_lead_the_markdown(sample_report):
    report = dict(sample_report[1], flags=["paper: cheat beats the oracle on explain (all queries): 0.700 > 0.500"])
    markdown = audit.render_markdown(report)
    assert markdown.index("## ⚠ Flags") < markdown.index("## Total reward") and "cheat beats the oracle" in markdown


def test_cli_warns_on_stderr_for_each_flag(tmp_path, sbert, monkeypatch, capsys):
    monkeypatch.setattr(audit, "find_flags", lambda summary, ratio, free: ["paper: empty beats the oracle on explain"])
    assert main([str(SAMPLE), "--out", str(tmp_path), "--variant", "paper", "--correction", "similarity"]) == 0
    err = capsys.readouterr().err
    assert "rarft-audit: WARNING: paper: empty beats the oracle on explain" in err
    # what it read first, then the model, then progress (on stderr even where it is not a terminal)
    said = err.index("rarft-audit: 8 queries from")
    responses = 8 * (len(POLICIES) + len(FITTED_POLICIES))  # 8 queries x every policy x one setting
    assert said < err.index("loading SentenceBERT") < err.index("auditing") < err.index(f"{responses}/{responses}")
    assert json.loads((tmp_path / "audit.json").read_text())["flags"] == ["paper: empty beats the oracle on explain"]


def test_cli_ratio_and_weights_reach_the_totals(tmp_path, sbert):
    assert (
        main(
            [
                str(SAMPLE),
                "--out",
                str(tmp_path),
                "--ratio",
                "1:0",
                "--variant",
                "paper",
                "--correction",
                "similarity",
                "--weights",
                "explain=0",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "audit.json").read_text())
    oracle = report["settings"]["paper"]["policies"][ORACLE]
    assert oracle["total_at_ratio"]["mean"] == oracle["groups"]["relevant"]["total"]["mean"] == pytest.approx(2.0)
    assert report["settings"]["paper"]["ranges"]["total"] == 4.0


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '{"id": 1, "label": {"relevant": true, "timestamp": [1, 2], "duration": 5, "query": "q"}}\n{"id": 2}\n',
            "line 2: field label: is missing",
        ),
        (
            '{"label": {"relevant": "yes", "duration": 5, "query": "q"}}\n',
            "line 1: field relevant: must be true or false",
        ),
        ("\n\n", "no query to audit"),
        ('[{"video": "v.mp4"}]', "record 0: field GRPO: must be a non-empty list"),
        ("{oops\n", "line 1: not valid JSON"),
    ],
)
def test_bad_input_is_one_line_naming_file_record_field_and_writes_nothing(
    tmp_path, capsys, monkeypatch, content, message
):
    def no_model(*args):
        raise AssertionError("SentenceBERT loaded before the input was read")

    monkeypatch.setattr("rarft_plugin.similarity.get_similarity", no_model)
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    assert main([str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rarft-audit: error: ") and str(data) in err and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_missing_file_and_unknown_setting(tmp_path, capsys):
    assert main([str(tmp_path / "none.json"), "--out", str(tmp_path / "out")]) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main([str(SAMPLE), "--out", str(tmp_path / "out"), "--variant", "trl"])
    assert stopped.value.code == 2 and not (tmp_path / "out").exists()


def test_load_labels_reports_the_released_files_defects(official_data):
    loaded, note = load_labels(official_data / "ss_vtg_charades.json")
    assert "unknown (left out)" in note and all(isinstance(q.label, Label) for q in loaded)
    assert all(q.video.endswith(".mp4") and "/" not in q.video for q in loaded)  # grouped by the file name
    with pytest.raises(DataError, match="file not found"):
        load_labels(official_data / "nope.json")


def test_the_audit_module_is_a_pipeline_over_the_library():
    """rarft_plugin never imports the pipelines (the reward maths stay in the library)."""
    import rarft_plugin.rewards as rewards

    source = Path(rewards.__file__).read_text()
    assert "import eval" not in source and "from eval" not in source
    assert audit.score_many is score_many  # the same reward code training runs


def test_the_readme_table_is_the_audit_of_the_bundled_sample(sample_report):
    """README "What the rewards can be gamed by": its sample table must be what rarft-audit computes."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## What the rewards can be gamed by") :]
    settings = sample_report[1]["settings"]
    columns = ["paper", "released", "paper+contrastive", "paper+gain"]
    rows = {}
    for line in section.splitlines():
        found = re.match(r"\| `(\w+)`[^|]*\| (reference|blind|query text) \| (.+) \|$", line)
        if found:
            rows[found.group(1)] = [cell.strip() for cell in found.group(3).split("|")]
    assert set(rows) == {p["name"] for p in policy_table()}
    for name, cells in rows.items():
        expected = []
        for column in columns:
            entry = settings[column]["policies"][name]["total_at_ratio"]
            expected.append(
                f"{entry['mean']:.2f}" if name == ORACLE else f"{entry['mean']:.2f} ({entry['margin_fraction']:.0%})"
            )
        assert cells == expected, name
