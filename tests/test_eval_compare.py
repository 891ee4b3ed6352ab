"""`rarft-eval compare`: any number of runs, one section per evaluation set, settings that differ,
the paper's published rows."""

import json

import pytest

from rarft_eval.cli import main as rarft_eval
from rarft_eval.compare import ComparedRun, compare_markdown, run_settings
from rarft_eval.metrics import Judgement, compute_metrics
from rarft_eval.predictions import Prediction, meta_path, prediction_from_example
from rarft_eval.record import RunRecord
from rarft_plugin.dataset import load_examples

REFUSAL = "<think>t</think> <answer>No segment shows it.</answer> <correct>a man sits</correct>"


def answer_relevant(every):
    """Answers relevant queries with their span, and refuses 1 in `every` irrelevant query only."""

    def output(example):
        if example.label.relevant:
            start, end = example.label.timestamp
            return f"<think>t</think> <answer>{start:.2f} to {end:.2f}</answer> <correct>nothing</correct>"
        return REFUSAL if int(example.key.split(":")[0]) % every == 0 else "<answer>0.00 to 1.00</answer>"

    return output


def evaluated(official_data, tmp_path, file, name, output, *extra, template="ra_rft"):
    """A run of `file` evaluated under `name` (its predictions as `infer` would write them, with a record)."""
    preds = tmp_path / f"{name}.jsonl"
    examples, _ = load_examples(official_data / file)
    preds.write_text(
        "".join(json.dumps(prediction_from_example(e, output(e), False).to_json()) + "\n" for e in examples)
    )
    meta_path(preds).write_text(
        json.dumps(
            {
                "data": str(official_data / file),
                "template": template,
                "shard": "0/1",
                "max_new_tokens": 256,
                "decoding": "greedy",
                "backend": "hf",
                "dtype": "bf16",
                "model": "/models/x",
                "model_fingerprint": "ab12",
            }
        )
    )
    run = tmp_path / name
    assert rarft_eval(["evaluate", str(preds), "--out", str(run), "--no-sbert", "--name", name, *extra]) == 0
    return run


def compare(capsys, *args):
    capsys.readouterr()
    try:
        code = rarft_eval(["compare", *map(str, args)])
    except SystemExit as stop:  # argparse refused an argument
        code = stop.code
    return code, capsys.readouterr()


def sections(text):
    """{section title: its text} of the `## ` sections."""
    parts = text.split("\n## ")[1:]
    return {part.splitlines()[0]: part for part in parts}


def test_runs_of_different_sets_are_never_merged(official_data, tmp_path, capsys):
    runs = [
        evaluated(official_data, tmp_path, file, name, answer_relevant(2))
        for file, name in (("hi_vtg_charades.json", "hi"), ("human_anno.json", "human"), ("ss_vtg_charades.json", "ss"))
    ]
    code, out = compare(capsys, *runs)
    assert code == 0
    found = sections(out.out)
    assert [title.split(" (")[0] for title in found] == ["HI-Charades", "Human-Annotated", "SS-Charades"]
    for text, name in zip(found.values(), ("hi", "human", "ss"), strict=True):
        rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
        assert {row.split(" | ")[0] for row in rows} == {f"| {name}"}  # one run per set, its own tables
    assert "3 evaluation sets: each has its own tables" in out.out


def test_any_number_of_runs_with_stored_names_and_differences(official_data, tmp_path, capsys):
    runs = [
        evaluated(official_data, tmp_path, "human_anno.json", name, answer_relevant(every))
        for name, every in (("base", 4), ("mid", 2), ("ours", 1))
    ]
    code, out = compare(capsys, *runs)
    assert code == 0
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    f1 = [100 * m["relevance"]["f1_avg"] for m in metrics]
    assert "| metric | base | mid | ours | mid - base | ours - base |" in out.out
    assert (
        f"| F1 avg. | {f1[0]:.1f} | {f1[1]:.1f} | {f1[2]:.1f} | {f1[1] - f1[0]:+.1f} | {f1[2] - f1[0]:+.1f} |"
        in out.out
    )
    assert "- **ours** (`" in out.out and "checkpoint /models/x (fingerprint ab12)" in out.out
    assert "Settings differ" not in out.out
    code, out = compare(capsys, *runs, "--name", "A", "--name", "B", "--name", "C")
    assert code == 0 and "| metric | A | B | C | B - A | C - A |" in out.out


def test_settings_that_differ_are_flagged(official_data, tmp_path, capsys):
    base = evaluated(official_data, tmp_path, "human_anno.json", "base", answer_relevant(2), template="time_r1")
    ours = evaluated(official_data, tmp_path, "human_anno.json", "ours", answer_relevant(2), "--strict-recall")
    code, out = compare(capsys, base, ours)
    assert code == 0
    assert (
        "**Settings differ (not measured alike):** R@m counts IoU: base=>=, ours=>; template: base=time_r1, "
        "ours=ra_rft." in out.out
    )
    # the time_r1 run's responses do not follow its own format: its warning is shown before the tables
    assert "- base: only 0 of 200 responses (0.0 %) follow the time_r1 output format" in out.out


def test_paper_rows_beside_the_runs(official_data, tmp_path, capsys):
    run = evaluated(official_data, tmp_path, "hi_vtg_charades.json", "Time-R1 + RA-RFT", answer_relevant(2))
    code, out = compare(capsys, run, "--paper")
    assert code == 0
    text = out.out
    assert "| paper Table 1: Time-R1 + RA-RFT (ours) | - | - | 62.4 | 55.5 | 45.8 | 53.1 | 72.5 | 69.2 | 70.8 |" in text
    assert "| paper Table 10: VideoChat-R1 | 50.7 | 1.19 | 65.8 | 1.61 | 73.3 | 1.77 |" in text
    assert "paper Table 1: RaTSG*" not in text  # no HI-Charades numbers published for it
    assert "paper Table 3" not in text and "paper Table 2" not in text  # other datasets' rows stay out
    metrics = json.loads((run / "metrics.json").read_text())
    ours = 100 * metrics["ra_iou"]["R@0.3"]
    assert f"| Time-R1 + RA-RFT - paper Table 1: Time-R1 + RA-RFT (ours) |  |  | {ours - 62.4:+.1f} |" in text


@pytest.mark.parametrize(
    "selection, present, absent",
    [
        (
            "Table 12",
            "| paper Table 12: Qwen2.5-VL-7B | - | - | 32.9 | 26.2 | 21.2 | 27.8 | 69.8 | 41.2 | 55.5 |",
            "paper Table 1:",
        ),
        ("HI-TVGBench", "| paper Table 11: Time-R1 | 52.5 | 0.95 | 66.2 | 1.49 | 78.8 | 2.08 |", "paper Table 10"),
    ],
)
def test_paper_rows_of_a_named_table_or_dataset(official_data, tmp_path, capsys, selection, present, absent):
    run = evaluated(official_data, tmp_path, "hi_vtg_charades.json", "mine", answer_relevant(2))
    code, out = compare(capsys, run, "--paper", selection)
    assert code == 0 and present in out.out and absent not in out.out


def test_an_unknown_data_file_names_no_paper_rows(official_data, tmp_path, capsys):
    data = tmp_path / "eval.json"
    data.write_text(json.dumps(json.loads((official_data / "human_anno.json").read_text())[:10]))
    run = evaluated(tmp_path, tmp_path, "eval.json", "mine", answer_relevant(2))
    code, out = compare(capsys, run, "--paper")
    assert code == 0 and "No paper dataset is known for this data file: name one with `--paper DATASET`" in out.out
    assert "paper Table" not in out.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "only-one"], "--name given 1 time(s) for 2 run(s)"),
        ([], "two runs are named alike (same, same)"),
        (["--paper", "Table 99"], "expected auto, a dataset"),
    ],
)
def test_compare_refuses(official_data, tmp_path, capsys, args, message):
    run = evaluated(official_data, tmp_path, "human_anno.json", "same", answer_relevant(2))
    code, out = compare(capsys, run, run / "metrics.json", *args)
    assert code == 2 and message in out.err


def test_run_settings_of_shards():
    metrics, _ = compute_metrics(
        [Prediction("0:0", "v", "q", "", True, (0.0, 1.0), "", (), None)], [Judgement(False, (0.0, 1.0))]
    )
    record = RunRecord(
        metrics,
        judge={"relevance": "rule"},
        inference=({"max_new_tokens": 256, "backend": "hf"}, {"max_new_tokens": 128, "backend": "hf"}),
    )
    settings = run_settings(record)
    assert (settings["max new tokens"], settings["backend"], settings["template"]) == ("mixed", "hf", None)


def test_compare_needs_a_run():
    with pytest.raises(ValueError, match="nothing to compare"):
        compare_markdown([])
    assert compare_markdown.__module__ == "rarft_eval.compare" and ComparedRun
