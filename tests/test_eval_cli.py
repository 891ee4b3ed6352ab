"""`rarft-eval evaluate` / `compare` end to end: every official file, reports, shards, data checks, bad input."""

import json
import random
from dataclasses import replace

import pytest
from support.openai_server import ChatServer, system_text

from rarft_eval.cli import main as rarft_eval
from rarft_eval.compare import ComparedRun, compare_markdown
from rarft_eval.evaluate import write_report
from rarft_eval.metrics import Judgement, compute_metrics
from rarft_eval.predictions import Prediction, prediction_from_example
from rarft_eval.record import RunRecord
from rarft_eval.report import markdown
from rarft_plugin.dataset import load_examples

HOSTILE = [
    "<answer>nan to 1e309</answer>",
    "",
    "<answer><answer>",
    "\u202e" * 50,
    "x" * 20_000,
    "<answer>9 to 3</answer>",
    "\x00<think>" * 100,
    '{"relevant": true}',
    "<answer>" + "1 to 2 " * 2000,
]


def synthetic_predictions(path, out, seed=0):
    """Model outputs of every kind, including hostile ones, for every query of a file."""
    examples, _ = load_examples(path)
    rng = random.Random(seed)
    rows = []
    for e in examples:
        roll = rng.random()
        if roll < 0.4:
            text = f"<think>t</think> <answer>No segment: {e.label.answer_refusal[:80]}</answer> <correct>q</correct>"
        elif roll < 0.8 and e.label.timestamp:
            text = f"<answer>{e.label.timestamp[0]:.2f} to {e.label.timestamp[1]:.2f}</answer>"
        elif roll < 0.9:
            text = "<answer>0.00 to 3.00</answer>"
        else:
            text = rng.choice(HOSTILE)
        rows.append(prediction_from_example(e, text).to_json())
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.mark.parametrize(
    "name, levels",
    [
        ("hi_vtg_charades.json", {"strong", "moderate", "weak", "original"}),
        ("human_anno.json", {"original"}),
        ("ss_vtg_charades.json", {"shuffled", "original"}),
    ],
)
def test_every_official_file_scores_end_to_end(official_data, tmp_path, name, levels, sbert):
    preds = tmp_path / "preds.jsonl"
    rows = synthetic_predictions(official_data / name, preds)
    run = tmp_path / "run"
    sbert_option = [] if name == "human_anno.json" else ["--no-sbert"]  # the SBERT path once, on the small file
    assert (
        rarft_eval(["evaluate", str(preds), "--out", str(run), "--data", str(official_data / name), *sbert_option]) == 0
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["count"]["queries"] == len(rows)
    assert set(metrics["by_difficulty"]) == levels
    defects = load_examples(official_data / name)[1]
    assert metrics["data"]["unknown_spans"] == defects.unknown_spans and metrics["data"]["missing_predictions"] == []
    assert bool(defects.unknown_spans) == (name == "ss_vtg_charades.json")  # reported, not silently dropped
    assert defects.summary() in (run / "report.md").read_text()
    assert 0 < metrics["ra_iou"]["mIoU"] < 1 and 0 < metrics["relevance"]["f1_avg"] < 1
    items = [json.loads(line) for line in (run / "items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == [row["id"] for row in rows]
    report = (run / "report.md").read_text()
    assert "## RA-IoU and F1 (Tables 1, 2, 8, 12)" in report and "| preds |" in report
    assert (run / "metrics.csv").read_text().startswith("metric,value\n")
    if name == "ss_vtg_charades.json":  # no refusal answers to compare explanations with
        assert metrics["count"]["explanation_eligible"] == 0 and "Table 9" not in report
    else:
        assert (run / "by_category.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if name == "human_anno.json":
        assert metrics["explanation"]["sbert"]["n"] == metrics["count"]["irrelevant"]
        assert "## Refusal explanation quality (Table 9)" in report
    if name == "hi_vtg_charades.json":
        assert (run / "by_difficulty.png").exists() and "Strong F1" in report


@pytest.mark.parametrize("name", ["hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json"])
def test_the_references_themselves_score_perfectly(official_data, tmp_path, name):
    """An oracle answering with each query's reference (a_time or a_refusal) is read right by the parser."""
    examples, _ = load_examples(official_data / name)
    references = [e.label.answer_time if e.label.relevant else e.label.answer_refusal for e in examples]
    rows = [
        prediction_from_example(e, f"<think>t</think> <answer>{text}</answer> <correct>q</correct>").to_json()
        for e, text in zip(examples, references, strict=True)
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rarft_eval(["evaluate", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ra_iou"] == {"R@0.3": 1.0, "R@0.5": 1.0, "R@0.7": 1.0, "mIoU": 1.0}
    assert metrics["relevance"]["f1_avg"] == 1.0 and metrics["vtg_iou"]["mIoU"] == 1.0
    assert all(row["refusal_accuracy"] == 1.0 for row in metrics["by_category"].values())


@pytest.mark.parametrize(
    "argv, replacement",
    [
        (["score", "{p}", "--out", "{run}"], "`score` is retired: use `rarft-eval evaluate` (same arguments"),
        (["evaluate", "{p}", "--out", "{run}", "--answer-reading", "last_block"], "--answer-reading is retired: every"),
        (["evaluate", "{p}", "--out", "{run}", "--answer-reading=released"], "--answer-reading is retired: every"),
        (["evaluate", "--sbert-text", "answer", "{p}", "--out", "{run}"], "--sbert-text is retired: the SBERT score"),
    ],
)
def test_retired_options_are_one_line_errors_naming_their_replacement(
    official_data, tmp_path, capsys, argv, replacement
):
    """0.1.0's `score` alias and compatibility readings: no silent change of what a command computes, no work."""
    synthetic_predictions(official_data / "human_anno.json", tmp_path / "p.jsonl")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        rarft_eval([arg.format(p=tmp_path / "p.jsonl", run=tmp_path / "run") for arg in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and replacement in err
    assert not (tmp_path / "run").exists()


def hand_table():
    predictions = [
        Prediction("0:0", "v", "q", "", True, (0.0, 10.0), "0 to 10", (), "original"),
        Prediction("0:1", "v", "q2", "", False, None, "ref", ("Attribute/Counting",), "strong"),
        Prediction("1:0", "w", "q", "", True, (0.0, 10.0), "0 to 10", (), "original"),
        Prediction("1:1", "w", "q2", "", False, None, "ref", ("Attribute/Counting",), "weak"),
    ]
    judgements = [
        Judgement(False, (0.0, 5.0)),
        Judgement(True, None, ("Attribute/Counting",), 4.0),
        Judgement(True, None),
        Judgement(True, None, (), 1.0),
    ]
    return compute_metrics(predictions, judgements, sbert_scores=[None, 0.5, None, 0.25])


def test_markdown_rows_are_laid_out_like_the_paper():
    metrics, _ = hand_table()
    report = markdown(
        RunRecord(metrics, judge={"relevance": "rule", "answer_reading": "released"}), title="t", name="Ours"
    )
    assert "answers read as the released evaluation does" in report
    # RA-IoU [0.5, 1, 0, 1]: R@.3 .75, R@.5 .75, R@.7 .5, mIoU .625
    # relevant: tp 1, fn 1 -> F1 2/3; irrelevant: tn 2, fn 1 -> F1 .8
    assert "| Ours | 75.0 | 75.0 | 50.0 | 62.5 | 66.7 | 80.0 | 73.3 |" in report
    # Table 3 appends RT-IoU (mean of 1 and 0), SBERT and LLM scores (two decimals)
    assert "| Ours | 75.0 | 75.0 | 50.0 | 62.5 | 66.7 | 80.0 | 73.3 | 50.0 | 0.38 | 2.50 |" in report
    assert "| Ours | 73.3 | 75.0 | 62.5 | 50.0 | 0.38 | 2.50 |" in report  # Table 4: F1, R@.5, mIoU, explanation
    # Table 6: released F1 on each level's own irrelevant queries (both refused: 100), then the extra 1:1
    # columns: strong = item 0 (F1 1.0 both); weak = item 1 (relevant refused: (0 + 2/3) / 2)
    assert (
        "| Method | Strong F1 | Strong LLM sc. | Weak F1 | Weak LLM sc. | Strong F1 avg. 1:1 | Weak F1 avg. 1:1 |"
        in report
    )
    assert "| Ours | 100.0 | 4.00 | 100.0 | 1.00 | 100.0 | 33.3 |" in report
    assert "| Ours | 50.0 | 50.0 | 0.0 | 25.0 |" in report  # Table 7: VTG IoU [0.5, 0]


def test_compare_prints_deltas(official_data, tmp_path, capsys):
    for seed in (0, 1):
        synthetic_predictions(official_data / "human_anno.json", tmp_path / f"p{seed}.jsonl", seed)
        rarft_eval(["evaluate", str(tmp_path / f"p{seed}.jsonl"), "--out", str(tmp_path / f"run{seed}"), "--no-sbert"])
    capsys.readouterr()
    assert (
        rarft_eval(
            [
                "compare",
                str(tmp_path / "run0"),
                str(tmp_path / "run1" / "metrics.json"),
                "--name",
                "base",
                "--name",
                "ours",
                "--out",
                str(tmp_path / "cmp.md"),
                "--all",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    a, b = (json.loads((tmp_path / f"run{s}" / "metrics.json").read_text()) for s in (0, 1))
    f1_a, f1_b = 100 * a["relevance"]["f1_avg"], 100 * b["relevance"]["f1_avg"]
    assert f"| F1 avg. | {f1_a:.1f} | {f1_b:.1f} | {f1_b - f1_a:+.1f} |" in table
    assert "| metric | base | ours | ours - base |" in table and "| ra_iou.mIoU |" in table
    assert "Settings differ" not in table and (tmp_path / "cmp.md").read_text() == table


def test_compare_flags_runs_that_are_not_comparable():
    metrics, _ = hand_table()
    one = RunRecord(metrics, judge={"relevance": "rule"})
    other = RunRecord(replace(metrics, strict_recall=True), judge={"relevance": "llm"})
    text = compare_markdown([ComparedRun("a", "runs/a", one), ComparedRun("b", "runs/b", other)])
    assert (
        "**Settings differ (not measured alike):** relevance judge: a=rule, b=llm; R@m counts IoU: a=>=, b=>." in text
    )


@pytest.mark.parametrize("args, message", [(["nowhere"], "file not found"), (["{bad"], "not valid JSON")])
def test_compare_bad_inputs(tmp_path, capsys, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text("{bad")
    path = bad if args == ["{bad"] else tmp_path / "nowhere"
    assert rarft_eval(["compare", str(path), str(path)]) == 2
    assert message in capsys.readouterr().err


GOOD = {
    "id": "0:0",
    "video": "v",
    "query": "q",
    "model_output": "",
    "gt_relevant": True,
    "gt_timestamp": [0, 1],
    "gt_output": "",
    "gt_categories": [],
    "hardness_level": None,
}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"model_output": None}, "field model_output: must be a string"),
        ({"gt_categories": "Object/ObjectExistence"}, "field gt_categories: must be a list"),
        ({"gt_relevant": "yes"}, "field gt_relevant: must be true or false"),
        ({"gt_relevant": True, "gt_timestamp": None}, "field gt_timestamp: a relevant query needs [start, end]"),
        ({"gt_timestamp": [5, 1]}, "field gt_timestamp: must satisfy 0 <= start <= end"),
        ({"hardness_level": "extreme"}, "field hardness_level: unknown difficulty"),
        ({"query": ""}, "field query: must not be empty"),
        ({"id": "0:0"}, "duplicate id '0:0'"),
    ],
)
def test_bad_prediction_files_are_named(tmp_path, capsys, bad, message):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "0:1", **bad}) + "\n")
    assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / "run"), "--no-sbert"]) == 2
    error = capsys.readouterr().err
    assert f"{path}: record line 2: " in error and message in error


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"id": "0:0"}\n', "missing field(s) ['video', 'query'"),
        ("[1, 2]\n", "expected a JSON object"),
        ('{"id": \n', "not valid JSON"),
        ("", "no predictions"),
    ],
)
def test_broken_prediction_files(tmp_path, capsys, text, message):
    path = tmp_path / "preds.jsonl"
    path.write_text(text)
    assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / "run"), "--no-sbert"]) == 2
    assert message in capsys.readouterr().err


def test_rows_without_id_and_extra_fields_are_accepted(tmp_path):
    """Files from the released evaluation code carry no `id`; their item is the video."""
    rows = [
        {k: v for k, v in GOOD.items() if k != "id"} | {"model_output": "<answer>0 to 1</answer>", "extra": 1},
        {
            **GOOD,
            "gt_relevant": False,
            "gt_timestamp": [],
            "gt_output": "no",
            "hardness_level": "hard",
            "gt_categories": None,
            "model_output": "<answer>no</answer>",
        },
    ]
    del rows[1]["id"]
    path = tmp_path / "released.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ra_iou"]["mIoU"] == 1.0 and metrics["by_difficulty"]["strong"]["paired"]["queries"] == 2


def test_shards_are_evaluated_together_and_data_coverage_is_checked(official_data, tmp_path):
    rows = synthetic_predictions(official_data / "human_anno.json", tmp_path / "all.jsonl")
    for index in range(2):
        (tmp_path / f"s{index}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[index::2][:-1]))
    args = [
        "evaluate",
        str(tmp_path / "s0.jsonl"),
        str(tmp_path / "s1.jsonl"),
        "--out",
        str(tmp_path / "run"),
        "--no-sbert",
        "--data",
        str(official_data / "human_anno.json"),
    ]
    assert rarft_eval(args) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["count"]["queries"] == len(rows) - 2
    assert metrics["data"]["missing_predictions"] == [rows[-2]["id"], rows[-1]["id"]]
    assert "**2 quer(ies) of the data file have no prediction**" in (tmp_path / "run" / "report.md").read_text()


def test_shards_with_the_same_query_are_refused(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(GOOD) + "\n")
    assert (
        rarft_eval(
            [
                "evaluate",
                str(tmp_path / "a.jsonl"),
                str(tmp_path / "b.jsonl"),
                "--out",
                str(tmp_path / "r"),
                "--no-sbert",
            ]
        )
        == 2
    )
    assert f"duplicate id '0:0' (first at {tmp_path / 'a.jsonl'}: line 1)" in capsys.readouterr().err


def test_predictions_of_another_file_are_refused(official_data, tmp_path, capsys):
    rows = synthetic_predictions(official_data / "human_anno.json", tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({**r, "id": "x" + r["id"]}) + "\n" for r in rows))
    assert (
        rarft_eval(
            [
                "evaluate",
                str(tmp_path / "p.jsonl"),
                "--out",
                str(tmp_path / "run"),
                "--no-sbert",
                "--data",
                str(official_data / "human_anno.json"),
            ]
        )
        == 2
    )
    assert "no prediction matches a query of the data file" in capsys.readouterr().err


def test_write_report_for_the_demo(official_data, tmp_path, sbert):
    synthetic_predictions(official_data / "human_anno.json", tmp_path / "p.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    record = write_report(rows, tmp_path / "run", title="demo", name="demo")
    assert record.judge == {
        "relevance": "rule",
        "explanations": None,
        "answer_reading": "released",
        "sbert_text": "released",
        "sbert_model": sbert.model_path,
    }
    report = (tmp_path / "run" / "report.md").read_text()
    assert "SBERT score: the response minus its correction, think included" in report
    assert "the released evaluation used all-mpnet-base-v2, which is not available offline here" in report
    assert record.metrics.explanation.sbert.all is not None
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {
        "metrics.json",
        "items.jsonl",
        "report.md",
        "metrics.csv",
        "by_category.png",
    }
    assert write_report(tmp_path / "p.jsonl", tmp_path / "run2", sbert=False).metrics.ra_iou == record.metrics.ra_iou


def judge_responder(request):
    system = system_text(request)
    response = request["messages"][-1]["content"]
    if system.startswith("You read the response"):
        if "No segment" in response:
            return '{"relevant": false, "start": null, "end": null}'
        return 'Sure: {"relevant": true, "start": 1.0, "end": 4.0}'
    if system.startswith("You are a strict multi-label"):
        return '["Object/ObjectExistence"]'
    return "'score': 3.5"


def test_llm_judge_from_the_command_line(official_data, tmp_path):
    preds = tmp_path / "preds.jsonl"
    synthetic_predictions(official_data / "human_anno.json", preds)
    args = [
        "evaluate",
        str(preds),
        "--out",
        str(tmp_path / "run"),
        "--judge",
        "llm",
        "--llm-explanations",
        "--base-url",
        server_url := "",
        "--model",
        "judge",
        "--no-sbert",
    ]
    with ChatServer(judge_responder) as server:
        args[args.index(server_url)] = server.url
        assert rarft_eval(args) == 0
        first = len(server.requests)
        assert rarft_eval(args) == 0  # cached on disk (OUT/judge_cache.jsonl): nothing is asked twice
        assert len(server.requests) == first
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["judge"]["relevance"] == "llm" and metrics["judge"]["usage"]["cached"] == first
    assert metrics["explanation"]["llm_score"]["refused"] == pytest.approx(3.5)
    assert "LLM judge judge" in (tmp_path / "run" / "report.md").read_text()


def test_llm_judging_without_an_endpoint_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / "run"), "--judge", "llm", "--no-sbert"]) == 2
    assert "need --base-url and --model" in capsys.readouterr().err


def released_inference_output(path, outputs, *, levels=False):
    """Rows as the released inference writes them: a JSON array, no ids, the raw reference answer,
    the item's timestamp, the level in `irrelevance_level` (here "" unless `levels`)."""
    rows = []
    for item in json.loads(path.read_text()):
        for entry in item["GRPO"]:
            rows.append(
                {
                    "video": item["video"],
                    "query": entry["q"],
                    "model_output": outputs(len(rows), entry),
                    "gt_relevant": entry["r"],
                    "gt_timestamp": item["timestamp"],
                    "gt_output": entry["a"],
                    "gt_categories": entry.get("c", []),
                    "irrelevance_level": entry.get("difficulty", "") if levels and not entry["r"] else "",
                }
            )
    return rows


def answer_or_refuse(index, entry):
    """Answers every third irrelevant query wrongly and every fifth relevant one late."""
    if entry["r"]:
        return "<answer>0.0 to 4.0</answer>" if index % 5 == 0 else entry["a"]
    return "<answer>0.0 to 4.0</answer>" if index % 3 == 0 else f"<think>t</think> {entry['a']}"


def test_the_released_inference_output_scores_as_it_is(official_data, tmp_path):
    """JSON array, no ids, `irrelevance_level` "", a timestamp on irrelevant rows, an odd category: it scores,
    with the same numbers as rarft's own prediction file of the same outputs, and `--data` fills the levels."""
    rows = released_inference_output(official_data / "hi_vtg_charades.json", answer_or_refuse)
    rows[1]["gt_categories"] = rows[1]["gt_categories"] + ["Action/SceneTransition"]  # the mislabelled category
    released = tmp_path / "released.json"
    released.write_text(json.dumps(rows, indent=1))
    assert rarft_eval(["evaluate", str(released), "--out", str(tmp_path / "plain"), "--no-sbert"]) == 0
    assert (
        rarft_eval(
            [
                "evaluate",
                str(released),
                "--out",
                str(tmp_path / "joined"),
                "--no-sbert",
                "--data",
                str(official_data / "hi_vtg_charades.json"),
            ]
        )
        == 0
    )
    examples, _ = load_examples(official_data / "hi_vtg_charades.json")
    ours = tmp_path / "ours.jsonl"
    ours.write_text(
        "".join(
            json.dumps(prediction_from_example(e, row["model_output"]).to_json()) + "\n"
            for e, row in zip(examples, rows, strict=True)
        )
    )
    assert rarft_eval(["evaluate", str(ours), "--out", str(tmp_path / "ours"), "--no-sbert"]) == 0
    plain, joined, reference = (
        json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("plain", "joined", "ours")
    )
    for metrics in (plain, joined):
        assert metrics["ra_iou"] == reference["ra_iou"] and metrics["relevance"] == reference["relevance"]
    assert set(plain["by_difficulty"]) == {"original"}  # no level in the rows
    assert joined["by_difficulty"] == reference["by_difficulty"]  # levels and items from the data file
    assert plain["prediction_defects"] == {
        "category 'Action/SceneTransition' outside the taxonomy (left out)": 1,
        "gt_timestamp on an irrelevant query (ignored)": 1097,
    }
    assert joined["data"]["missing_predictions"] == [] and joined["data"]["unmatched_rows"] == []
    report = (tmp_path / "plain" / "report.md").read_text()
    assert "Prediction file defects (rows kept): category 'Action/SceneTransition'" in report


def released_model_output(index, entry):
    """A finished output of the released model as its inference writes it: <correction> tag, <|im_end|> left on."""
    answer = entry["a"] if entry["r"] else "<answer>The video does not show it.</answer>"
    return f"<think>t</think> {answer} <correction>{'NIL' if entry['r'] else entry['q']}</correction><|im_end|>"


def test_genuine_released_inference_output_complies(official_data, tmp_path):
    """The released inference's JSON array, every output ending with <|im_end|>: the released template is assumed
    (no ids), the marker is read off before the format check and counted, and every response complies."""
    rows = released_inference_output(official_data / "hi_vtg_charades.json", released_model_output)
    released = tmp_path / "released.json"
    released.write_text(json.dumps(rows))
    assert rarft_eval(["evaluate", str(released), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    compliance = json.loads((tmp_path / "run" / "metrics.json").read_text())["format"]
    assert compliance["template"] == "ra_rft_released" and compliance["template_source"] == "assumed"
    assert compliance["compliant"] == compliance["end_of_turn"] == compliance["queries"] == 2194
    report = (tmp_path / "run" / "report.md").read_text()
    assert "2194 response(s) end with an end-of-turn marker (<|im_end|>), checked without it" in report


def test_items_without_ids_are_grouped_by_video_and_relevant_query(official_data, tmp_path):
    """1,097 HI-Charades items share 753 videos: the 1:1 level subsets of a file without ids are those of
    the same file with ids (grouping by video alone would lend relevant queries to other items' levels)."""
    rows = released_inference_output(official_data / "hi_vtg_charades.json", answer_or_refuse, levels=True)
    for row in rows:
        row["gt_timestamp"] = row["gt_timestamp"] if row["gt_relevant"] else None
    released = tmp_path / "released.json"
    released.write_text(json.dumps(rows))
    examples, _ = load_examples(official_data / "hi_vtg_charades.json")
    ours = tmp_path / "ours.jsonl"
    ours.write_text(
        "".join(
            json.dumps(prediction_from_example(e, row["model_output"]).to_json()) + "\n"
            for e, row in zip(examples, rows, strict=True)
        )
    )
    for path, run in ((released, "released"), (ours, "ours")):
        assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / run), "--no-sbert"]) == 0
    released_metrics, ours_metrics = (
        json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("released", "ours")
    )
    assert released_metrics["by_difficulty"] == ours_metrics["by_difficulty"]
    assert {
        level: row["paired"]["queries"] for level, row in ours_metrics["by_difficulty"].items() if level != "original"
    } == {"strong": 2 * 530, "moderate": 2 * 363, "weak": 2 * 204}


def test_answers_are_read_as_the_released_evaluation_reads_them(tmp_path):
    """Think blocks removed (a timestep inside one is no answer), then the first answer block."""
    outputs = [
        "<think><timestep>0.00 to 3.00</timestep> a man sits.</think> The video does not contain this.",
        "<answer>No match.</answer><answer>2 to 6</answer>",
    ]
    rows = [
        {
            **GOOD,
            "id": f"{i}:1",
            "gt_relevant": False,
            "gt_timestamp": None,
            "gt_output": "no",
            "model_output": o,
            "hardness_level": "hard",
            "gt_categories": ["Attribute/Counting"],
        }
        for i, o in enumerate(outputs)
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rarft_eval(["evaluate", str(path), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    items = [json.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert [item["refused"] for item in items] == [True, True] and metrics["judge"]["answer_reading"] == "released"
    assert "answers read as the released evaluation does" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize(
    "options, summary, missing",
    [
        ([], "ss_vtg_charades.json: 582 relevant query span(s) unknown (left out), 178 span(s)", 0),
        (
            ["--spans-from", "hi_vtg_charades.json"],
            "ss_vtg_charades.json: 189 relevant query span(s) recovered from other items, 393 relevant query "
            "span(s) unknown (left out)",
            189,
        ),
        (["--unknown-spans", "item"], "ss_vtg_charades.json: 582 assumed to be the item's timestamp", 582),
    ],
)
def test_evaluate_reports_ss_charades_second_query_spans(official_data, tmp_path, options, summary, missing):
    preds = tmp_path / "p.jsonl"
    synthetic_predictions(official_data / "ss_vtg_charades.json", preds)
    options = [str(official_data / o) if o.endswith(".json") else o for o in options]
    assert (
        rarft_eval(
            [
                "evaluate",
                str(preds),
                "--out",
                str(tmp_path / "run"),
                "--no-sbert",
                "--data",
                str(official_data / "ss_vtg_charades.json"),
                *options,
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary in metrics["data"]["summary"] and summary in (tmp_path / "run" / "report.md").read_text()
    # the predictions were made from the default load: the queries the file now also holds have none
    assert len(metrics["data"]["missing_predictions"]) == missing


def test_spans_from_and_the_released_spans_exclude_each_other(official_data, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps(GOOD) + "\n")
    assert (
        rarft_eval(
            [
                "evaluate",
                str(preds),
                "--out",
                str(tmp_path / "run"),
                "--no-sbert",
                "--data",
                str(official_data / "ss_vtg_charades.json"),
                "--unknown-spans",
                "item",
                "--spans-from",
                str(official_data / "hi_vtg_charades.json"),
            ]
        )
        == 2
    )
    assert "exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json"])
def test_the_smallest_examples_on_every_shipped_file(official_data, tmp_path, name):
    """Every irrelevant query answered `<think><timestep>0.00 to 3.00</timestep> …</think> The video does not
    contain this.` and every relevant one `<answer>No match.</answer><answer>S to E</answer>`: the released
    reading refuses all of them."""
    examples, _ = load_examples(official_data / name)
    rows = []
    for e in examples:
        if e.label.relevant:
            text = f"<answer>No match.</answer><answer>{e.label.timestamp[0]} to {e.label.timestamp[1]}</answer>"
        else:
            text = (
                "<think><timestep>0.00 to 3.00</timestep> a person is in the room.</think> The video does not "
                "contain this."
            )
        rows.append(prediction_from_example(e, text).to_json())
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rarft_eval(["evaluate", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    released = json.loads((tmp_path / "run" / "metrics.json").read_text())
    irrelevant = sum(not r["gt_relevant"] for r in rows)
    assert released["relevance"]["accuracy"] == pytest.approx(irrelevant / len(rows))
    assert released["relevance"]["recall_irrel"] == 1.0 and released["relevance"]["recall_rel"] == 0.0
    assert released["vtg_iou"]["mIoU"] == 0.0
