"""`rarft-audit`: how much of each RA-RFT reward cheap exploits collect, next to the reference answers.

    rarft-audit DATA --out DIR [--variant paper,released] [--correction similarity,contrastive,gain]
        [--explain similarity] [--weights explain=0.5] [--ratio 1:3] [--model DIR] [--device cpu]

DATA is a released-schema file (`rarft_plugin.dataset.load_examples`) or OpenRLHF prompt JSONL
(rows with a JSON `label`, from `rarft-prep to-openrlhf`). Every policy of `eval.exploits` and the
fitted baselines of `eval.blind` write one response per query, scored by
`rarft_plugin.rewards.score_many` (the code training runs) under every reward setting asked for:
each `--variant` with each `--correction` and each `--explain`. Each distinct text is encoded once
for all policies and settings (the similarity cache; queries go in chunks).

For each setting, policy and component (format, refuse_iou, explain, correction, total) the audit
reports the mean over all queries, the relevant ones, the irrelevant ones and each difficulty
level, and its *margin*: the oracle's mean minus the policy's, absolute and as a fraction of the
component's range (`rarft_plugin.rewards.reward_bounds`; the total's range is the weighted sum of
the ranges). The total is also reported at relevant:irrelevant = `--ratio` (default 1:3, the
paper's training mix): (R·mean_relevant + I·mean_irrelevant) / (R + I). A margin is the learning
signal that separates the skill from the exploit; a policy that beats the oracle on any component
in any group, or earns at least the oracle's total at the ratio, is flagged (`flags` in the JSON,
a section at the top of the Markdown, a warning on stderr).

Video-free baselines. Each policy's *share* of the margin is (policy − empty) / (oracle − empty),
totals at the ratio: what it keeps of what the reference answers earn over empty blocks. The
fitted baselines (`eval.blind`: the best video-free refusal policy, a query-text classifier's
decision, the right decision with everything else video-free) are chosen out of fold by video; a
setting where a policy that never sees the video (the blind exploits and the first two fitted ones)
keeps more than `VIDEO_FREE_SHARE` of the margin is flagged. The text-only leakage check
(`rarft_plugin.leakage`) reports how well the query text alone tells irrelevant from relevant
queries (out-of-fold AUC by video, per level, cue words); its classifier is the one
`text_decision` decides with.

Writes DIR/audit.json (everything, plus what produced it), DIR/audit.md (tables) and
DIR/audit_margins.png (margins per policy and setting). Where a file lacks a reference text a
reward needs (SS-VTG has no refusal texts, and q_r only where the item has a relevant query), the
oracle earns no more than the exploits on that reward (the paper's is 0 for all): margins of 0,
and exploits that tie the oracle's total are flagged, which is what such data teaches.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from rarft_plugin.arguments import parse_ratio
from rarft_plugin.cli import ArgumentParser, command_line, entry_point
from rarft_plugin.command_files import CommandFiles, Output, claim, staged_folder
from rarft_plugin.dataset import load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import file_sha256, read_json, read_jsonl, read_text, write_atomic
from rarft_plugin.leakage import FOLDS, label_leakage, out_of_fold_scores
from rarft_plugin.prompt_row import VIDEO_KEY
from rarft_plugin.rewards import (
    CORRECTIONS,
    EXPLAINS,
    REWARD_NAMES,
    VARIANTS,
    parse_weights,
    reward_bounds,
    score_many,
)
from rarft_plugin.schema import DIFFICULTIES, JsonValue, Label, parse_label
from rarft_plugin.similarity import Similarity

from .blind import FITTED_POLICIES, Baselines, fit_baselines
from .exploits import CORRECTION_TAG, POLICIES, Policy, Setting, neighbours
from .provenance import EVALUATION_PACKAGES, now, package_versions

__all__ = [
    "COMPONENTS",
    "ORACLE",
    "CHUNK",
    "TOLERANCE",
    "DEFAULT_RATIO",
    "EMPTY",
    "VIDEO_FREE_SHARE",
    "AuditQuery",
    "policy_table",
    "load_labels",
    "score_policies",
    "groups",
    "component_ranges",
    "at_ratio",
    "margin_entry",
    "margin_share",
    "share_table",
    "summarise",
    "find_flags",
    "overview_table",
    "component_table",
    "render_markdown",
    "plot_margins",
    "settings_from",
    "audit",
    "add_arguments",
    "run",
    "main",
]

COMPONENTS = (*REWARD_NAMES, "total")
ORACLE = "oracle"
# Queries per chunk: each chunk's texts are encoded once and stay cached while every policy and
# setting is scored on it (the similarity cache holds 50,000 texts).
CHUNK = 2000
# Differences below this are rounding (float32 cosines), not a policy beating the oracle.
TOLERANCE = 1e-6
DEFAULT_RATIO = (1, 3)
EMPTY = "empty"  # the policy the shares are measured from
# A policy that never sees the video and keeps more than this share of the margin is flagged.
VIDEO_FREE_SHARE = 0.10


class AuditQuery(NamedTuple):
    """One query of the audited file: its id, its label and its video (the group of the out-of-fold splits)."""

    key: str
    label: Label
    video: str


def load_labels(path: Path) -> tuple[list[AuditQuery], str]:
    """One `AuditQuery` per query of a released-schema file or an OpenRLHF prompt JSONL, and a load note.

    The video is the item's video file name (the released files carry their authors' absolute
    paths) or the prompt row's video field; a row without one is its own group. Raises DataError
    naming file, record and field; a file without a query is an error.
    """
    if read_text(path).lstrip().startswith("["):
        examples, report = load_examples(path)
        labels = [AuditQuery(e.key, e.label, Path(e.item.video).name) for e in examples]
        note = report.summary() or f"{path}: no data defects"
    else:
        labels, note = [], f"{path}: OpenRLHF prompt rows"
        for number, row in read_jsonl(path):
            if "label" not in row:
                raise DataError(
                    "is missing (a prompt row from rarft-prep to-openrlhf holds one)",
                    source=str(path),
                    record=f"line {number}",
                    field="label",
                )
            label = parse_label(row["label"], source=str(path), record=f"line {number}")
            labels.append(AuditQuery(str(row.get("id", f"line {number}")), label, _row_video(row, number)))
    if not labels:
        raise DataError("no query to audit", source=str(path))
    return labels, note


def _row_video(row: Mapping[str, JsonValue], number: int) -> str:
    """A prompt row's video as a group name: the file name of its path (or of its `path` field)."""
    value = row.get(VIDEO_KEY)
    if isinstance(value, Mapping):
        value = value.get("path")
    return Path(value).name if isinstance(value, str) and value else f"line {number}"


def score_policies(
    labels: Sequence[Label],
    settings: Sequence[Setting],
    policies: Sequence[Policy] = POLICIES,
    *,
    similarity: Similarity,
    weights: Mapping[str, float] | None = None,
    chunk: int = CHUNK,
    fitted: Baselines | None = None,
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """setting name -> policy name -> one reward dict per label (`score_many`'s), in label order.

    `fitted`: the responses of the fitted baselines (`eval.blind`), scored after the policies.
    """
    fitted_names = list(next(iter(fitted.responses.values()))) if fitted and fitted.responses else []
    names = [p.name for p in policies] + fitted_names
    scores: dict[str, dict[str, list[dict[str, float]]]] = {s.name: {name: [] for name in names} for s in settings}
    others = neighbours(labels)
    starts = range(0, len(labels), chunk)
    # on stderr even when it is not a terminal: a long audit otherwise says nothing for minutes
    with tqdm(total=len(labels) * len(names) * len(settings), desc="auditing", unit="response", file=sys.stderr) as bar:
        for start in starts:
            part, part_others = labels[start : start + chunk], others[start : start + chunk]
            for name in names:
                for setting in settings:
                    if name in fitted_names:
                        responses = fitted.responses[setting.name][name][start : start + chunk]
                    else:
                        policy = policies[names.index(name)]
                        tag = CORRECTION_TAG[setting.variant]
                        responses = [
                            policy.write(label, tag, other) for label, other in zip(part, part_others, strict=True)
                        ]
                    scores[setting.name][name] += score_many(
                        responses,
                        part,
                        variant=setting.variant,
                        correction=setting.correction,
                        explain=setting.explain,
                        weights=weights,
                        similarity=similarity,
                    )
                    bar.update(len(part))
    return scores


def groups(labels: Sequence[Label]) -> dict[str, list[int]]:
    """Group name -> indices of its labels: all, relevant, irrelevant, then each difficulty present.

    >>> a = Label(relevant=True, duration=5, query="q", timestamp=(1, 2), difficulty="original")
    >>> b = Label(relevant=False, duration=5, query="p")
    >>> groups([a, b])
    {'all': [0, 1], 'relevant': [0], 'irrelevant': [1], 'original': [0], 'untagged': [1]}
    """
    out = {
        "all": list(range(len(labels))),
        "relevant": [i for i, label in enumerate(labels) if label.relevant],
        "irrelevant": [i for i, label in enumerate(labels) if not label.relevant],
    }
    for level in (*DIFFICULTIES, None):
        members = [i for i, label in enumerate(labels) if label.difficulty == level]
        if members:
            out[level or "untagged"] = members
    return {name: members for name, members in out.items() if members}


def component_ranges(setting: Setting, weights: Mapping[str, float]) -> dict[str, float]:
    """Width of each component's documented range; the total's is the weighted sum of them."""
    bounds = reward_bounds(setting.variant, setting.correction, setting.explain)
    ranges = {name: high - low for name, (low, high) in bounds.items()}
    ranges["total"] = sum(abs(weights[name]) * ranges[name] for name in REWARD_NAMES)
    return ranges


def at_ratio(relevant_mean: float | None, irrelevant_mean: float | None, ratio: tuple[int, int]) -> float | None:
    """The mean reward of a relevant:irrelevant = ratio mix; None when the file lacks a class the ratio needs.

    >>> at_ratio(2.0, 4.0, (1, 3)), at_ratio(None, 4.0, (0, 1)), at_ratio(None, 4.0, (1, 3))
    (3.5, 4.0, None)
    """
    r, i = ratio
    if (r and relevant_mean is None) or (i and irrelevant_mean is None):
        return None
    return (r * (relevant_mean or 0.0) + i * (irrelevant_mean or 0.0)) / (r + i)


def margin_entry(value: float | None, oracle: float | None, width: float) -> dict[str, float | None]:
    """{mean, margin = oracle − mean, margin_fraction = margin / width} (None where undefined)."""
    if value is None or oracle is None:
        return {"mean": value, "margin": None, "margin_fraction": None}
    margin = oracle - value
    return {"mean": value, "margin": margin, "margin_fraction": margin / width if width else None}


def margin_share(value: float | None, oracle: float | None, empty: float | None) -> float | None:
    """(value − empty) / (oracle − empty): the share of the oracle's margin over empty blocks a policy keeps.

    >>> margin_share(2.0, 3.0, 1.0), margin_share(1.0, 1.0, 1.0)
    (0.5, None)
    """
    if value is None or oracle is None or empty is None or abs(oracle - empty) <= TOLERANCE:
        return None
    return (value - empty) / (oracle - empty)


def summarise(
    labels: Sequence[Label],
    scores: Mapping[str, Mapping[str, list[dict[str, float]]]],
    settings: Sequence[Setting],
    *,
    weights: Mapping[str, float],
    ratio: tuple[int, int],
) -> dict[str, JsonValue]:
    """Per setting: ranges, and per policy the means and margins by group, and the total at the ratio."""
    members = groups(labels)
    out = {}
    for setting in settings:
        ranges = component_ranges(setting, weights)
        by_policy = scores[setting.name]
        means = {
            policy: {
                group: {c: fmean(rows[i][c] for i in indices) for c in COMPONENTS} for group, indices in members.items()
            }
            for policy, rows in by_policy.items()
        }
        totals = {
            policy: at_ratio(m.get("relevant", {}).get("total"), m.get("irrelevant", {}).get("total"), ratio)
            for policy, m in means.items()
        }
        oracle = means[ORACLE]
        out[setting.name] = {
            "variant": setting.variant,
            "correction": setting.correction,
            "explain": setting.explain,
            "ranges": ranges,
            "policies": {
                policy: {
                    "groups": {
                        group: {c: margin_entry(values[c], oracle[group][c], ranges[c]) for c in COMPONENTS}
                        for group, values in means[policy].items()
                    },
                    "total_at_ratio": margin_entry(totals[policy], totals[ORACLE], ranges["total"]),
                    "share": margin_share(totals[policy], totals[ORACLE], totals.get(EMPTY)),
                }
                for policy in by_policy
            },
        }
    return out


def find_flags(summary: Mapping[str, JsonValue], ratio: tuple[int, int], video_free: Sequence[str] = ()) -> list[str]:
    """Every place an exploit beats the oracle on a component, or earns at least its total at the ratio;
    every video-free policy (`video_free`) keeping more than `VIDEO_FREE_SHARE` of the margin.

    >>> entry = lambda mean, margin: {"mean": mean, "margin": margin, "margin_fraction": None}
    >>> summary = {"paper": {"policies": {
    ...     "oracle": {"groups": {"all": {"explain": entry(0.5, 0.0)}}, "total_at_ratio": entry(3.0, 0.0)},
    ...     "cheat": {"groups": {"all": {"explain": entry(0.7, -0.2)}}, "total_at_ratio": entry(3.0, 0.0)}}}}
    >>> print("\\n".join(find_flags(summary, (1, 3))))
    paper: cheat beats the oracle on explain (all queries): 0.700 > 0.500
    paper: cheat earns at least the oracle's total at 1:3: 3.000 >= 3.000
    """
    flags = []
    for setting, result in summary.items():
        for policy, entries in result["policies"].items():
            if policy == ORACLE:
                continue
            for group, components in entries["groups"].items():
                for component, entry in components.items():
                    if entry["margin"] is not None and entry["margin"] < -TOLERANCE:
                        flags.append(
                            f"{setting}: {policy} beats the oracle on {component} ({_group_title(group)}): "
                            f"{entry['mean']:.3f} > {entry['mean'] + entry['margin']:.3f}"
                        )
            total = entries["total_at_ratio"]
            if total["margin"] is not None and total["margin"] <= TOLERANCE:
                flags.append(
                    f"{setting}: {policy} earns at least the oracle's total at {ratio[0]}:{ratio[1]}: "
                    f"{total['mean']:.3f} >= {total['mean'] + total['margin']:.3f}"
                )
            share = entries.get("share")
            if policy in video_free and share is not None and share > VIDEO_FREE_SHARE:
                flags.append(
                    f"{setting}: video-free policy {policy} keeps {share:.2f} of the margin at "
                    f"{ratio[0]}:{ratio[1]} (> {VIDEO_FREE_SHARE:.2f})"
                )
    return flags


def _group_title(group: str) -> str:
    return f"{group} queries" if group in ("all", "relevant", "irrelevant") else f"difficulty {group}"


# ---------------------------------------------------------------- reports


def policy_table() -> list[dict[str, JsonValue]]:
    """Every policy the audit scores, in report order: name, description, who decides relevance, video-free."""
    rows: list[dict[str, JsonValue]] = [
        {
            "name": p.name,
            "description": p.description,
            "decides": "reference" if p.sees_relevance else "blind",
            "video_free": not p.sees_relevance,
        }
        for p in POLICIES
    ]
    rows += [
        {"name": p.name, "description": p.description, "decides": p.decides, "video_free": p.video_free}
        for p in FITTED_POLICIES
    ]
    return rows


def _cell(entry: Mapping[str, float | None], policy: str) -> str:
    if entry["mean"] is None:
        return "n/a"
    if policy == ORACLE or entry["margin"] is None:
        return f"{entry['mean']:.3f}"
    fraction = "" if entry["margin_fraction"] is None else f", {entry['margin_fraction']:.0%}"
    return f"{entry['mean']:.3f} (Δ{entry['margin']:+.3f}{fraction})"


def overview_table(
    settings: Mapping[str, JsonValue],
    pick: Callable[[Mapping[str, JsonValue]], Mapping[str, JsonValue]],
    policies: Sequence[Mapping[str, JsonValue]],
) -> str:
    """policy | decides relevance | one column per setting, each cell `pick(the policy's entries)`."""
    lines = ["| policy | decides relevance | " + " | ".join(settings) + " |", "|---" * (len(settings) + 2) + "|"]
    for policy in policies:
        name = policy["name"]
        cells = [_cell(pick(result["policies"][name]), name) for result in settings.values()]
        lines.append(f"| `{name}` | {policy['decides']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def share_table(settings: Mapping[str, JsonValue], policies: Sequence[Mapping[str, JsonValue]]) -> str:
    """policy | decides relevance | video-free | its share of the margin at the ratio, one column per setting."""
    lines = [
        "| policy | decides relevance | video-free | " + " | ".join(settings) + " |",
        "|---" * (len(settings) + 3) + "|",
    ]
    for policy in policies:
        shares = [result["policies"][policy["name"]]["share"] for result in settings.values()]
        cells = ["n/a" if share is None else f"{share:.2f}" for share in shares]
        free = "yes" if policy["video_free"] else "no"
        lines.append(f"| `{policy['name']}` | {policy['decides']} | {free} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def component_table(result: Mapping[str, JsonValue], group: str, policies: Sequence[Mapping[str, JsonValue]]) -> str:
    """policy | format | refuse_iou | explain | correction | total, for one group of queries."""
    lines = ["| policy | " + " | ".join(COMPONENTS) + " |", "|---" * (len(COMPONENTS) + 1) + "|"]
    for policy in policies:
        entries = result["policies"][policy["name"]]["groups"][group]
        lines.append(
            f"| `{policy['name']}` | " + " | ".join(_cell(entries[c], policy["name"]) for c in COMPONENTS) + " |"
        )
    ranges = result["ranges"]
    lines.append("| *range* | " + " | ".join(f"{ranges[c]:g}" for c in COMPONENTS) + " |")
    return "\n".join(lines)


def leakage_markdown(leakage: Mapping[str, JsonValue]) -> list[str]:
    """The text-only leakage section: AUC, per level, pairs, cue words."""
    out = ["## Text-only leakage: the query alone", ""]
    if leakage["auc"] is None:
        return out + [f"Not measured: {leakage['note']}.", ""]
    out += [
        f"A logistic regression on the query text (word 1-2-grams, character 2-5-grams), {leakage['folds']} folds "
        f"grouped by video, tells irrelevant from relevant queries with out-of-fold AUC **{leakage['auc']:.3f} ± "
        f"{leakage['auc_se']:.3f}** (accuracy {leakage['accuracy']:.3f}; 0.5: the text gives nothing away).",
        "",
    ]
    if leakage["levels"]:
        out += ["| level | irrelevant queries | AUC against the relevant | recall at 0.5 |", "|---|---|---|---|"]
        for name, level in leakage["levels"].items():
            value = "n/a" if level["auc"] is None else f"{level['auc']:.3f}"
            out.append(f"| {name} | {level['queries']} | {value} | {level['recall']:.2f} |")
        out.append("")
    if leakage["pair_pick"] is not None:
        out += [
            f"Of {leakage['pairs']} (relevant, irrelevant) pairs of one video, the irrelevant query scores higher "
            f"{leakage['pair_pick']:.1%} of the time.",
            "",
        ]
    out += [
        f"Cue words of irrelevant queries: {', '.join(leakage['cues_irrelevant']) or '-'}; "
        f"of relevant ones: {', '.join(leakage['cues_relevant']) or '-'}.",
        "",
    ]
    return out


def _choices_markdown(report: Mapping[str, JsonValue]) -> list[str]:
    out = ["### What the fitted baselines chose (folds that chose each text)", ""]
    for setting, slots in report["baselines"]["choices"].items():
        out.append(f"- {setting}: " + "; ".join(f"{slot}: {_chosen_text(counts)}" for slot, counts in slots.items()))
    return out + [""]


def _chosen_text(counts: Mapping[str, int]) -> str:
    name, folds = next(iter(counts.items()))
    shown = name if len(name) <= 60 else name[:57] + "..."
    others = f", {len(counts) - 1} other(s)" if len(counts) > 1 else ""
    return f"“{shown}” ({folds}{others})"


def render_markdown(report: Mapping[str, JsonValue]) -> str:
    ratio = tuple(report["ratio"])
    data = report["data"]
    policies = report["policies"]
    out = [
        f"# Reward-hacking audit: {data['path']}",
        "",
        f"{data['queries']} queries ({data['relevant']} relevant, {data['irrelevant']} irrelevant); "
        f"weights {_weights_text(report['weights'])}; SentenceBERT {report['produced_by']['model']}.",
        "Cells: the policy's mean reward (Δ = the oracle's mean minus it, then Δ as a share of the "
        "component's range). Δ ≤ 0 means the exploit earns as much as the reference answers.",
        "",
    ]
    if report["flags"]:
        out += ["## ⚠ Flags: exploits that match or beat the oracle, video-free policies that keep too much", ""]
        out += [f"- {flag}" for flag in report["flags"]]
        out.append("")
    settings = report["settings"]
    out += [
        f"## Share of the margin at relevant:irrelevant = {ratio[0]}:{ratio[1]}",
        "",
        "(policy − empty) / (oracle − empty), totals at the ratio: 1 is the oracle, 0 empty blocks. The fitted "
        "baselines choose their texts out of fold by video (`eval.blind`); a video-free policy above "
        f"{VIDEO_FREE_SHARE:.2f} is flagged.",
        "",
        share_table(settings, policies),
        "",
        *_choices_markdown(report),
        *leakage_markdown(report["leakage"]),
        f"## Total reward at relevant:irrelevant = {ratio[0]}:{ratio[1]}",
        "",
        overview_table(settings, lambda entries: entries["total_at_ratio"], policies),
        "",
        f"## Total reward, the file's mix ({data['relevant']}:{data['irrelevant']})",
        "",
        overview_table(settings, lambda entries: entries["groups"]["all"]["total"], policies),
        "",
    ]
    for group in ("irrelevant", "relevant"):
        if group not in data["groups"]:
            continue
        out += [f"## {group.capitalize()} queries ({data['groups'][group]}), per component", ""]
        for component in REWARD_NAMES:
            out += [
                f"### {component}",
                "",
                overview_table(settings, lambda entries, c=component, g=group: entries["groups"][g][c], policies),
                "",
            ]
    for name, result in settings.items():
        out += [f"## Every group: {name}", ""]
        for group in result["policies"][ORACLE]["groups"]:
            out += [
                f"### {_group_title(group)} ({data['groups'][group]})",
                "",
                component_table(result, group, policies),
                "",
            ]
    out += ["## Policies", ""] + [f"- `{p['name']}`: {p['description']}" for p in policies]
    return "\n".join(out) + "\n"


def _weights_text(weights: Mapping[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in weights.items())


def plot_margins(report: Mapping[str, JsonValue], path: Path) -> None:
    """One panel per component (margins on all queries) plus the total at the ratio; one bar per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exploits = [p["name"] for p in report["policies"] if p["name"] != ORACLE]
    settings = list(report["settings"])
    panels = [(c, lambda entries, c=c: entries["groups"]["all"][c]) for c in REWARD_NAMES]
    ratio = report["ratio"]
    panels.append((f"total at {ratio[0]}:{ratio[1]}", lambda entries: entries["total_at_ratio"]))
    figure, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 0.2 * len(exploits) * len(settings) + 1.8), sharey=True
    )
    height = 0.8 / len(settings)
    for axis, (title, pick) in zip(axes, panels, strict=True):
        for k, setting in enumerate(settings):
            policies = report["settings"][setting]["policies"]
            values = [pick(policies[name])["margin_fraction"] for name in exploits]
            axis.barh(
                [i + k * height for i in range(len(exploits))],
                [v if v is not None else 0.0 for v in values],
                height=height,
                label=setting,
            )
        axis.axvline(0.0, color="black", linewidth=0.8)
        axis.set_title(title)
        axis.set_xlabel("margin to the oracle / range")
    axes[0].set_yticks([i + 0.4 - height / 2 for i in range(len(exploits))], exploits)
    axes[0].invert_yaxis()
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(settings))
    figure.suptitle(
        f"{report['data']['path']}: margin of the oracle over each exploit, on all queries "
        f"(< 0: the exploit beats the oracle)"
    )
    figure.tight_layout(rect=(0, 0.05, 1, 0.95))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------- command line


def settings_from(variants: str, corrections: str, explains: str = "similarity") -> list[Setting]:
    """Every variant with every correction and every explain reward, from comma-separated lists.

    >>> [s.name for s in settings_from("paper,released", "similarity,contrastive")]
    ['paper', 'paper+contrastive', 'released', 'released+contrastive']
    >>> [s.name for s in settings_from("paper", "gain", "similarity,debiased")]
    ['paper+gain', 'paper+gain+debiased']
    """
    chosen_variants = _choices(variants, VARIANTS, "--variant")
    chosen_corrections = _choices(corrections, CORRECTIONS, "--correction")
    chosen_explains = _choices(explains, EXPLAINS, "--explain")
    return [Setting(v, c, e) for v in chosen_variants for c in chosen_corrections for e in chosen_explains]


def _choices(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    chosen = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{flag}: expected a comma-separated list of {list(allowed)}, got {text!r}")
    return chosen


def audit(
    path: Path,
    loaded: tuple[list[AuditQuery], str],
    settings: Sequence[Setting],
    *,
    weights: Mapping[str, float],
    ratio: tuple[int, int],
    similarity: Similarity,
) -> dict[str, JsonValue]:
    """The whole audit of one file (`loaded`: its `load_labels`), as the JSON report (without `produced_by`)."""
    queries, note = loaded
    labels = [query.label for query in queries]
    videos = [query.video for query in queries]
    texts = [label.query for label in labels]
    irrelevant = [not label.relevant for label in labels]
    # One out-of-fold classifier on one set of folds: the leakage report's, text_decision's, the baselines'.
    folds = min(FOLDS, len(set(videos)))
    measurable = folds >= 2 and 0 < sum(irrelevant) < len(labels)
    text_scores = out_of_fold_scores(texts, irrelevant, videos, folds=folds) if measurable else None
    leakage = label_leakage(labels, videos, scores=text_scores)
    if text_scores is None:
        text_scores = np.full(len(labels), np.nan)
    baselines = fit_baselines(
        labels,
        videos,
        settings,
        similarity=similarity,
        ratio=ratio,
        weights=weights,
        text_scores=text_scores,
        folds=folds,
    )
    scores = score_policies(labels, settings, similarity=similarity, weights=weights, fitted=baselines)
    summary = summarise(labels, scores, settings, weights=weights, ratio=ratio)
    policies = policy_table()
    return {
        "data": {
            "path": str(path),
            "sha256": file_sha256(path),
            "load": note,
            "queries": len(labels),
            "relevant": sum(label.relevant for label in labels),
            "irrelevant": sum(not label.relevant for label in labels),
            "videos": len(set(videos)),
            "groups": {group: len(members) for group, members in groups(labels).items()},
        },
        "ratio": list(ratio),
        "weights": dict(weights),
        "policies": policies,
        "settings": summary,
        "baselines": {"choices": baselines.choices},
        "leakage": {**leakage.to_json(), "summary": leakage.summary()},
        "flags": find_flags(summary, ratio, [p["name"] for p in policies if p["video_free"]]),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="released-schema JSON or OpenRLHF prompt JSONL (rows with a label)")
    parser.add_argument("--out", type=Path, required=True, help="folder for audit.json, audit.md, audit_margins.png")
    parser.add_argument(
        "--variant",
        default=",".join(VARIANTS),
        help=f"reward variants, comma-separated (default: {','.join(VARIANTS)})",
    )
    parser.add_argument(
        "--correction",
        default=",".join(CORRECTIONS),
        help=f"correction rewards, comma-separated, each audited with every variant (default: {','.join(CORRECTIONS)})",
    )
    parser.add_argument(
        "--explain",
        default=EXPLAINS[0],
        help=f"explain rewards, comma-separated, each audited with every variant and correction; one of "
        f"{','.join(EXPLAINS)} (default: {EXPLAINS[0]})",
    )
    parser.add_argument("--weights", default=None, help="e.g. format=1,refuse_iou=1,explain=0.5 (default: all 1)")
    parser.add_argument(
        "--ratio",
        type=parse_ratio,
        default=DEFAULT_RATIO,
        help="relevant:irrelevant mix of the extra total column, as in rarft-prep to-openrlhf "
        "(default 1:3, the paper's training mix)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="SentenceBERT name or directory (default: $RARFT_SBERT_MODEL or the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument("--device", default=None, help="SentenceBERT device (default: $RARFT_SBERT_DEVICE or cpu)")


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> dict[str, JsonValue]:
    from rarft_plugin.similarity import get_similarity

    started = time.perf_counter()
    settings = settings_from(args.variant, args.correction, args.explain)
    weights = parse_weights(args.weights)
    loaded = load_labels(args.data)  # a bad input is refused before the encoder loads
    print(
        f"rarft-audit: {len(loaded[0])} queries from {args.data}; {len(POLICIES) + len(FITTED_POLICIES)} policies x "
        f"{len(settings)} settings; loading SentenceBERT",
        file=sys.stderr,
        flush=True,
    )
    similarity = get_similarity(args.model, args.device)
    report = audit(args.data, loaded, settings, weights=weights, ratio=args.ratio, similarity=similarity)
    report["produced_by"] = {
        "command": ["rarft-audit", *argv],
        "packages": package_versions(EVALUATION_PACKAGES),
        "model": similarity.model_path,
        "device": similarity.device,
        "encoded_texts": similarity.encoded_texts,
        "seconds": round(time.perf_counter() - started, 1),
        "finished": now(),
    }
    with staged_folder(args.out, AUDIT_FILES, last="audit.json") as staging:
        plot_margins(report, staging / "audit_margins.png")
        write_atomic(staging / "audit.md", render_markdown(report))
        write_atomic(staging / "audit.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


AUDIT_FILES = ("audit_margins.png", "audit.md", "audit.json")


def not_an_audit_folder(out: Path) -> str | None:
    """Why an existing --out folder may not receive an audit, or None: a folder holding files of an
    audit's names must hold an audit (its audit.json); other files are never touched."""
    present = [name for name in AUDIT_FILES if (out / name).exists()]
    if not present:
        return None
    try:
        previous = read_json(out / "audit.json")
    except DataError:
        previous = None
    if not (isinstance(previous, dict) and {"settings", "flags", "produced_by"} <= set(previous)):
        return f"holds {', '.join(present)} but no audit of rarft-audit (its audit.json): not overwritten"
    return None


@entry_point("rarft-audit")
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="rarft-audit", description=__doc__.splitlines()[0])
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    files = CommandFiles.of(
        inputs=[args.data], outputs=[Output(args.out, folder=True, entries=AUDIT_FILES, resumes=not_an_audit_folder)]
    )
    try:
        with claim(files, holder=command_line("rarft-audit", argv)):
            report = run(args, argv)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    except (DataError, ValueError, OSError, RuntimeError) as error:
        print(f"rarft-audit: error: {error}", file=sys.stderr)
        return 2
    data = report["data"]
    print(
        f"rarft-audit: {data['queries']} queries x {len(report['policies'])} policies x {len(report['settings'])} "
        f"settings in {report['produced_by']['seconds']} s -> {args.out}/audit.md, audit.json, audit_margins.png"
    )
    ratio = report["ratio"]
    print(f"share of the margin at {ratio[0]}:{ratio[1]} (policy - empty) / (oracle - empty):")
    names = [p["name"] for p in report["policies"] if p["name"] in {f.name for f in FITTED_POLICIES}]
    for setting, result in report["settings"].items():
        shares = [result["policies"][name]["share"] for name in names]
        cells = ", ".join(
            f"{name} {'n/a' if v is None else format(v, '.2f')}" for name, v in zip(names, shares, strict=True)
        )
        print(f"  {setting}: {cells}")
    print(report["leakage"]["summary"])
    for flag in report["flags"]:
        print(f"rarft-audit: WARNING: {flag}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
