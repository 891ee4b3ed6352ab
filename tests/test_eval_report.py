"""What a report tells a reader before the numbers: format compliance, judge failures, what produced
the run; and the plots' labels."""

import json

import pytest
from support.openai_server import ChatServer, Fault, free_port, system_text, user_text
from test_eval_cli import judge_responder

from rarft_eval.cli import main as rarft_eval
from rarft_eval.predictions import meta_path, prediction_from_example
from rarft_eval.record import RunRecord, read_run
from rarft_eval.report import category_figure, level_figure, markdown
from rarft_plugin.dataset import load_examples
from rarft_plugin.io_utils import file_sha256

STRICT_REFUSAL = "<think>t</think> <answer>No segment: the man sits.</answer> <correct>a man sits</correct>"


def write_predictions(path, data, output, truncated=None):
    """One prediction per query of `data`, its text `output(example)`."""
    examples, _ = load_examples(data)
    path.write_text(
        "".join(json.dumps(prediction_from_example(e, output(e), truncated).to_json()) + "\n" for e in examples)
    )
    return examples


def evaluate(*args):
    return rarft_eval(["evaluate", *map(str, args), "--no-sbert"])


def test_a_model_emitting_only_newlines_is_loudly_flagged(official_data, tmp_path, capsys):
    """It scores mIoU 50 and 100 % refusal accuracy: the report must say why before the numbers."""
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "hi_vtg_charades.json", lambda e: "\n\n\n")
    assert evaluate(preds, "--out", tmp_path / "run") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ra_iou"]["mIoU"] == 0.5 and metrics["by_difficulty"]["strong"]["refusal_accuracy"] == 1.0
    assert metrics["format"] == {
        "template": "ra_rft",
        "template_source": "assumed",
        "queries": 2194,
        "compliant": 0,
        "empty": 2194,
        "truncated": 0,
        "truncated_source": "text",
        "end_of_turn": 0,
    }
    report = (tmp_path / "run" / "report.md").read_text()
    head = report[: report.index("## RA-IoU and F1")]
    assert "**Warnings (read these before the numbers):**" in head
    assert "- only 0 of 2194 responses (0.0 %) follow the ra_rft output format" in head
    assert "- 2194 of 2194 responses (100.0 %) are empty; an empty response counts as a refusal" in head
    assert "Format: 0.0 % of 2194 responses follow the ra_rft output format" in head
    err = capsys.readouterr().err
    assert err.count("rarft-eval evaluate: warning: ") == 2 and metrics["warnings"] == [
        line.removeprefix("rarft-eval evaluate: warning: ") for line in err.splitlines()
    ]


def test_format_of_the_template_infer_recorded(official_data, tmp_path):
    """A baseline asked for `<answer>` only is checked against that, not against the RA-RFT blocks; the
    share of generations cut by the token limit is what inference recorded."""
    preds = tmp_path / "p.jsonl"
    write_predictions(
        preds, official_data / "human_anno.json", lambda e: "<answer>1.00 to 2.00</answer>", truncated=False
    )
    meta_path(preds).write_text(
        json.dumps({"data": str(official_data / "human_anno.json"), "template": "qwen2_5_vl", "shard": "0/1"})
    )
    assert evaluate(preds, "--out", tmp_path / "run") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["format"]["template"], metrics["format"]["template_source"]) == ("qwen2_5_vl", "recorded")
    assert metrics["format"]["compliant"] == 200 and metrics["format"]["truncated_source"] == "recorded"
    assert metrics["warnings"] == []
    assert evaluate(preds, "--out", tmp_path / "given", "--template", "ra_rft") == 0  # --template overrides
    given = json.loads((tmp_path / "given" / "metrics.json").read_text())["format"]
    assert (given["template"], given["template_source"], given["compliant"]) == ("ra_rft", "given", 0)


def test_the_run_records_what_produced_it(official_data, tmp_path):
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "human_anno.json", lambda e: STRICT_REFUSAL)
    assert (
        evaluate(preds, "--out", tmp_path / "run", "--data", official_data / "human_anno.json", "--name", "Time-R1")
        == 0
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["name"] == "Time-R1" and "| Time-R1 |" in (tmp_path / "run" / "report.md").read_text()
    assert metrics["dataset"] == {
        "file": str(official_data / "human_anno.json"),
        "sha256": file_sha256(official_data / "human_anno.json"),
        "paper": "Human-Annotated",
        "kind": "no levels",
    }
    produced = metrics["produced_by"]
    assert produced["predictions"] == [{"file": str(preds), "sha256": file_sha256(preds)}]
    assert produced["packages"]["rarft"] and produced["evaluated_at"].endswith("+00:00")
    # a data file the paper's datasets do not include can be named
    assert evaluate(preds, "--out", tmp_path / "named", "--paper-dataset", "HI-TVGBench") == 0
    named = json.loads((tmp_path / "named" / "metrics.json").read_text())["dataset"]
    assert (named["file"], named["paper"]) == (None, "HI-TVGBench")


def test_predictions_made_from_another_version_of_the_data_file_are_flagged(official_data, tmp_path):
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "human_anno.json", lambda e: STRICT_REFUSAL)
    meta_path(preds).write_text(
        json.dumps({"data": str(official_data / "human_anno.json"), "template": "ra_rft", "data_sha256": "0" * 64})
    )
    assert evaluate(preds, "--out", tmp_path / "run") == 0
    warnings = json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"]
    assert warnings == [
        (
            f"the predictions were made from a data file with other content (SHA-256 000000000000) than "
            f"the one scored against ({file_sha256(official_data / 'human_anno.json')[:12]})"
        )
    ]


def judge_args(server, out, preds, *extra):
    return [
        "evaluate",
        str(preds),
        "--out",
        str(out),
        "--no-sbert",
        "--judge",
        "llm",
        "--base-url",
        server.url,
        "--model",
        "judge",
        "--retry-backoff",
        "0.001",
        *extra,
    ]


def alternate(example):
    return STRICT_REFUSAL if int(example.key.split(":")[0]) % 2 else "<answer>0.00 to 3.00</answer>"


def test_judge_failures_are_counted_in_the_header_and_per_table(official_data, tmp_path):
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "human_anno.json", alternate)

    def half_broken(request):
        if system_text(request).startswith("You read the response") and "0.00 to 3.00" in user_text(request):
            return Fault(status=400)  # not retried: this request fails for good
        return judge_responder(request)

    with ChatServer(half_broken) as server:
        assert rarft_eval(judge_args(server, tmp_path / "run", preds)) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["judge"]["calls"]["relevance"]["asked"] == 200
    assert (metrics["judge"]["calls"]["relevance"]["judged"], metrics["judge"]["calls"]["relevance"]["failed"]) == (
        100,
        100,
    )
    line = (
        "relevance: 100 of 200 queries judged by the LLM, 100 fell back to the core parser (100 failed, 0 unreadable)"
    )
    report = (tmp_path / "run" / "report.md").read_text()
    head, tables = report[: report.index("## RA-IoU and F1")], report[report.index("## RA-IoU and F1") :]
    assert f"- {line}." in head and f"LLM judge judge at {server.url}: {line}." in head
    assert tables.count(f"{line}.") >= 1  # under the RA-IoU table too
    assert line in metrics["warnings"]


def test_a_level_whose_scores_all_failed_shows_no_number(official_data, tmp_path):
    """One level's LLM scores all fail while the others are measured: that level shows '-', not 0.00."""
    preds = tmp_path / "p.jsonl"
    examples = write_predictions(
        preds,
        official_data / "hi_vtg_charades.json",
        lambda e: STRICT_REFUSAL if e.key.endswith(":1") and int(e.key[:-2]) % 3 else "<answer>0.00 to 3.00</answer>",
    )
    weak = {e.label.answer_refusal for e in examples if e.label.difficulty == "weak"}

    def no_score_for_weak(request):
        if system_text(request).startswith("You are an evaluator") and any(
            ref and ref in user_text(request) for ref in weak
        ):
            return Fault(status=400)
        return judge_responder(request)

    with ChatServer(no_score_for_weak) as server:
        assert rarft_eval(judge_args(server, tmp_path / "run", preds, "--llm-explanations")) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    weak_scores = metrics["by_difficulty"]["weak"]["explanation"]["llm_score"]
    assert weak_scores["all"] is None and weak_scores["unmeasured"] > 0
    assert metrics["by_difficulty"]["strong"]["explanation"]["llm_score"]["all"] > 0
    row = next(
        line
        for line in (tmp_path / "run" / "report.md").read_text().splitlines()
        if line.startswith("| p | ") and line.count("|") == 11
    )  # the per-level table
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6] == "-" and cells[2] != "-"  # Weak LLM sc. unmeasured; Strong LLM sc. a number


@pytest.mark.parametrize("judges", [["--judge", "llm"], ["--llm-explanations"]])
def test_evaluate_fails_when_the_judge_never_answers(official_data, tmp_path, capsys, judges):
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "human_anno.json", lambda e: STRICT_REFUSAL)
    out = tmp_path / "run"
    with ChatServer(lambda request: Fault(status=503)) as server:
        args = [
            "evaluate",
            str(preds),
            "--out",
            str(out),
            "--no-sbert",
            *judges,
            "--base-url",
            server.url,
            "--model",
            "judge",
            "--retry-backoff",
            "0.001",
        ]
        assert rarft_eval(args) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the judge's progress bar
    kind = "relevance: 0 of 200 judged (200 failed" if judges == ["--judge", "llm"] else "rt-iou: 0 of 100 judged"
    assert error.startswith("rarft-eval evaluate: error: the LLM judge gave no usable verdict (") and kind in error
    assert "HTTP 503" in error
    assert not (out / "metrics.json").exists() and not (out / "report.md").exists()


def test_evaluate_fails_at_once_when_the_judge_endpoint_is_down(official_data, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    write_predictions(preds, official_data / "human_anno.json", lambda e: STRICT_REFUSAL)
    assert (
        rarft_eval(
            [
                "evaluate",
                str(preds),
                "--out",
                str(tmp_path / "run"),
                "--no-sbert",
                "--judge",
                "llm",
                "--base-url",
                f"http://127.0.0.1:{free_port()}/v1",
                "--model",
                "judge",
            ]
        )
        == 1
    )
    assert "no answer (APIConnectionError" in capsys.readouterr().err
    assert not (tmp_path / "run" / "metrics.json").exists()


def levels_metrics(official_data, tmp_path, name):
    preds = tmp_path / "p.jsonl"
    write_predictions(
        preds,
        official_data / "hi_vtg_charades.json",
        lambda e: STRICT_REFUSAL if int(e.key.split(":")[0]) % 4 else "<answer>0.00 to 3.00</answer>",
    )
    assert (
        evaluate(preds, "--out", tmp_path / "run", "--data", official_data / "hi_vtg_charades.json", "--name", name)
        == 0
    )
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_plots_carry_the_run_name_the_counts_and_the_paper(official_data, tmp_path):
    metrics = levels_metrics(official_data, tmp_path, "Time-R1 + RA-RFT")
    record = read_run(tmp_path / "run")
    figure = level_figure(record, "Time-R1 + RA-RFT")
    axes = figure.axes[0]
    assert axes.get_title() == "Time-R1 + RA-RFT: by hardness level"
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    assert ticks == [
        f"{level}\nn={metrics['by_difficulty'][level]['irrelevant']}" for level in ("strong", "moderate", "weak")
    ]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "F1, paper Table 10: Time-R1 + RA-RFT (ours)" in legend
    (paper_points,) = axes.collections
    assert [y for _, y in paper_points.get_offsets()] == [71.5, 82.1, 90.0]
    # a name the paper does not have: no published marker
    other = level_figure(record, "my model").axes[0]
    assert len(other.collections) == 0 and other.get_title() == "my model: by hardness level"

    categories = category_figure(record, "Time-R1 + RA-RFT").axes[0]
    labels = [label.get_text() for label in categories.get_yticklabels()]
    assert "Object/ObjectExistence" in labels and all("/" in label for label in labels)
    counts = {text.get_text() for text in categories.texts}
    assert f"n={metrics['by_category']['Object/ObjectExistence']['n']}" in counts
    assert categories.get_title() == "Time-R1 + RA-RFT: refusal accuracy by semantic category"


def test_the_hand_table_report_has_no_format_line_without_a_format_record():
    """metrics.json files written before format compliance existed still render (compare reads old runs)."""
    from test_eval_cli import hand_table

    metrics, _ = hand_table()
    report = markdown(
        RunRecord(metrics, judge={"relevance": "rule", "answer_reading": "released"}), title="t", name="Ours"
    )
    assert "Format:" not in report and "Warnings" not in report
