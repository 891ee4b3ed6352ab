"""`rarft-eval infer` with each model family's tiny random stand-in on CPU over generated videos."""

import json

import pytest

from rarft_eval.cli import main as rarft_eval
from rarft_eval.predictions import meta_path
from rarft_plugin.stand_ins import write_test_video

IDS = ["0:0", "0:1", "1:0", "1:1", "2:0", "2:1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, official_data, tiny_model):
    root = tmp_path_factory.mktemp("infer")
    items = json.loads((official_data / "human_anno.json").read_text())[:3]
    data = root / "eval.json"
    data.write_text(json.dumps(items))
    videos = root / "videos"
    for index, item in enumerate(items):
        write_test_video(videos / item["video"].split("/")[-1], seconds=4 + index, size=(112, 84))
    return tiny_model, data, videos


def infer(setup, out, *extra):
    model, data, videos = setup
    return rarft_eval(
        [
            "infer",
            "--model",
            str(model),
            "--data",
            str(data),
            "--video-root",
            str(videos),
            "--out",
            str(out),
            "--backend",
            "hf",
            "--batch-size",
            "4",
            "--max-new-tokens",
            "6",
            *extra,
        ]
    )


def lines(path):
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def complete(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("complete") / "preds.jsonl"
    assert infer(setup, out) == 0
    return out


def test_infer_writes_one_prediction_per_query_in_order(complete, tmp_path, setup):
    rows = [json.loads(line) for line in lines(complete)]
    assert [r["id"] for r in rows] == IDS
    assert all(isinstance(r["model_output"], str) for r in rows)
    assert [r["gt_relevant"] for r in rows] == [True, False] * 3
    meta = json.loads(meta_path(complete).read_text())
    assert meta["data"] == str(setup[1].resolve()) and meta["template"] == "ra_rft" and meta["queries"] == 6
    # score finds the data file through the recorded settings and checks coverage
    assert rarft_eval(["evaluate", str(complete), "--out", str(tmp_path / "run"), "--no-sbert"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["missing_predictions"] == [] and metrics["inference"][0]["shard"] == "0/1"


def test_batched_equals_one_by_one(setup, complete, tmp_path):
    infer(setup, tmp_path / "single.jsonl", "--batch-size", "1")
    single = [json.loads(line)["model_output"] for line in lines(tmp_path / "single.jsonl")]
    assert [json.loads(line)["model_output"] for line in lines(complete)] == single  # greedy, left padding


@pytest.mark.parametrize("cut", ["whole lines", "torn last line"])
def test_resume_predicts_only_what_is_missing(setup, complete, tmp_path, capsys, cut):
    out = tmp_path / "preds.jsonl"
    text = complete.read_text()
    kept = "".join(line + "\n" for line in lines(complete)[:2])
    out.write_text(kept if cut == "whole lines" else kept + lines(complete)[2][:40])  # as if killed mid-write
    meta_path(out).write_text(meta_path(complete).read_text())
    capsys.readouterr()
    assert infer(setup, out) == 0
    assert "4 predicted now" in capsys.readouterr().out
    assert out.read_text() == text


def test_resume_refuses_other_settings(setup, complete, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    out.write_text(lines(complete)[0] + "\n")
    meta_path(out).write_text(meta_path(complete).read_text())
    assert infer(setup, out, "--template", "time_r1") == 2
    assert "template: 'ra_rft' -> 'time_r1'" in capsys.readouterr().err
    assert lines(out) == lines(complete)[:1]  # untouched


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "7:0"}, "prediction '7:0' is not a query of this data file and shard"),
        ({"query": "another question"}, "is not a query of this data file and shard"),
        ({"gt_relevant": "yes"}, "cannot resume from this line"),
    ],
)
def test_resume_refuses_a_foreign_output(setup, complete, tmp_path, capsys, row, message):
    out = tmp_path / "preds.jsonl"
    text = json.dumps({**json.loads(lines(complete)[0]), **row}) + "\n" + lines(complete)[1] + "\n" + '{"cut'
    out.write_text(text)
    meta_path(out).write_text(meta_path(complete).read_text())
    assert infer(setup, out) == 2
    error = capsys.readouterr().err
    assert f"{out}: record line 1" in error and message in error
    assert out.read_text() == text  # refused as it is: not even its cut-off last line is dropped


@pytest.mark.parametrize("kind", ["an unrelated one-line file", "predictions without their record"])
def test_only_infers_own_files_are_resumed(setup, complete, tmp_path, capsys, kind):
    """A file without the record infer writes beside its predictions is not infer's: refused untouched,
    even when it holds predictions (their settings are unknown), never "repaired"."""
    out = tmp_path / "preds.jsonl"
    text = '{"an unrelated": "file"}' if kind.startswith("an unrelated") else complete.read_text()[:-20]
    out.write_text(text)
    assert infer(setup, out) == 2
    err = capsys.readouterr().err
    assert f"{out}: exists, and is not a prediction file of rarft-eval infer (no preds.jsonl.meta.json" in err
    assert out.read_text() == text and not meta_path(out).exists()


def test_resume_refuses_other_span_options(setup, complete, tmp_path, capsys):
    """The span options decide which queries a file holds and their ground truth: no mixing on resume.
    A run recorded before these options existed counts as the defaults."""
    out = tmp_path / "preds.jsonl"
    out.write_text(lines(complete)[0] + "\n")
    recorded = json.loads(meta_path(complete).read_text())
    assert (recorded["unknown_spans"], recorded["spans_from"]) == ("skip", [])
    del recorded["unknown_spans"], recorded["spans_from"]
    meta_path(out).write_text(json.dumps(recorded))
    assert infer(setup, out, "--unknown-spans", "item") == 2
    assert "unknown_spans: 'skip' -> 'item'" in capsys.readouterr().err


def test_infer_records_what_produced_the_predictions(complete, setup):
    from rarft_eval.checkpoint import fingerprint
    from rarft_plugin.io_utils import file_sha256

    model, data, _ = setup
    meta = json.loads(meta_path(complete).read_text())
    assert meta["model"] == str(model.resolve()) and meta["model_fingerprint"] == fingerprint(model)
    assert meta["data_sha256"] == file_sha256(data) and meta["processor"] is None
    assert (meta["backend"], meta["dtype"], meta["device"], meta["decoding"]) == ("hf", "fp32", "cpu", "greedy")
    assert meta["packages"]["torch"] and meta["packages"]["transformers"] and "vllm" in meta["packages"]
    rows = [json.loads(line) for line in lines(complete)]
    # 6 new tokens from a random model: it never reaches its end-of-sequence token
    assert [row["truncated"] for row in rows] == [True] * 6


def test_the_fingerprint_changes_with_the_weights(setup, tmp_path):
    import shutil

    from rarft_eval.checkpoint import fingerprint

    model = setup[0]
    copy = shutil.copytree(model, tmp_path / "copy")
    assert fingerprint(copy) == fingerprint(model)
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 0xFF  # one byte of one tensor in the middle of the file
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert fingerprint(copy) != fingerprint(model)


def broken_copy(model, directory, change):
    import shutil

    copy = shutil.copytree(model, directory)
    change(copy)
    return copy


@pytest.mark.parametrize(
    "change, message",
    [
        (None, "{model}: no such directory"),
        (
            lambda d: (d / "config.json").write_text(""),
            "--model {model}: not a complete checkpoint: config.json is empty",
        ),
        (lambda d: (d / "config.json").write_text("{}"), "config.json has no model_type"),
        (lambda d: (d / "model.safetensors").unlink(), "no weights (model.safetensors or pytorch_model.bin"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer (tokenizer.json"),
        (lambda d: (d / "chat_template.jinja").unlink(), "no chat template"),
        # what OpenRLHF's --ckpt.save_hf writes for Qwen2.5-VL: everything but the processor's configuration
        (
            lambda d: (d / "processor_config.json").unlink(),
            (
                "--model {model}: no preprocessor_config.json "
                "(a checkpoint saved by OpenRLHF's --ckpt.save_hf has none): add --processor BASE_MODEL_DIR"
            ),
        ),
        (lambda d: (d / "model.safetensors").write_bytes(b"not safetensors" * 10), "--model {model}: cannot be loaded"),
    ],
)
def test_a_bad_model_is_one_line_and_leaves_no_file(setup, tmp_path, capsys, change, message):
    model = tmp_path / "ckpt"
    if change is not None:
        broken_copy(setup[0], model, change)
    out = tmp_path / "out" / "preds.jsonl"
    out.parent.mkdir()
    assert infer(setup, out, "--model", str(model)) == 2
    error = capsys.readouterr().err
    assert message.format(model=model) in error and len(error.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []  # no predictions, no record


def test_a_hub_name_offline_is_one_line(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert infer(setup, tmp_path / "p.jsonl", "--model", "Qwen/Qwen2.5-VL-7B-Instruct") == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(
        "--model Qwen/Qwen2.5-VL-7B-Instruct: no such directory, and not in the local hub cache "
        "(HF_HUB_OFFLINE is set, so the hub is not asked); give a checkpoint directory"
    )
    assert not (tmp_path / "p.jsonl").exists()


def test_processor_from_the_base_model(setup, complete, tmp_path):
    """A --ckpt.save_hf checkpoint (no processor configuration) predicts, with --processor, what the full one does."""
    model = broken_copy(setup[0], tmp_path / "ckpt", lambda d: (d / "processor_config.json").unlink())
    out = tmp_path / "preds.jsonl"
    assert infer(setup, out, "--model", str(model), "--processor", str(setup[0])) == 0
    assert [json.loads(line)["model_output"] for line in lines(out)] == [
        json.loads(line)["model_output"] for line in lines(complete)
    ]
    meta = json.loads(meta_path(out).read_text())
    assert meta["model"] == str(model) and meta["processor"] == str(setup[0].resolve())
    assert not (model / "processor_config.json").exists()  # the checkpoint is left as it was


def test_limit_then_the_rest(setup, complete, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    assert infer(setup, out, "--limit", "2") == 0
    assert [json.loads(line)["id"] for line in lines(out)] == IDS[:2]
    assert "2 predicted now, 2 of 6 queries of shard 0/1" in capsys.readouterr().out
    assert infer(setup, out) == 0  # a rerun without --limit extends the same file
    assert out.read_text() == complete.read_text()


def test_missing_videos_are_all_written(setup, official_data, tmp_path, capsys):
    listing = tmp_path / "missing.txt"
    assert (
        rarft_eval(
            [
                "infer",
                "--model",
                str(setup[0]),
                "--data",
                str(official_data / "human_anno.json"),
                "--video-root",
                str(tmp_path),
                "--out",
                str(tmp_path / "p.jsonl"),
                "--missing-videos",
                str(listing),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "100 video(s) not found or empty" in error and "(and 80 more)" in error
    assert f"(all 100 listed in {listing})" in error
    rows = [line.split("\t") for line in listing.read_text().splitlines()]
    items = json.loads((official_data / "human_anno.json").read_text())
    assert [row[0] for row in rows] == [item["video"] for item in items]
    assert rows[0][1] == "record 0" and "video not found under --video-root" in rows[0][2]
    assert not (tmp_path / "p.jsonl").exists()


def test_bare_video_ids_with_an_extension(setup, tmp_path):
    model, data, videos = setup
    items = json.loads(data.read_text())
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([{**item, "video": f"clip{i}"} for i, item in enumerate(items)]))
    renamed = tmp_path / "videos"
    renamed.mkdir()
    for i, item in enumerate(items):
        (renamed / f"clip{i}.MP4").write_bytes((videos / item["video"].split("/")[-1]).read_bytes())
    args = [
        "infer",
        "--model",
        str(model),
        "--data",
        str(bare),
        "--video-root",
        str(renamed),
        "--out",
        str(tmp_path / "p.jsonl"),
        "--backend",
        "hf",
        "--max-new-tokens",
        "2",
        "--limit",
        "2",
    ]
    listing = tmp_path / "missing.txt"
    assert rarft_eval([*args, "--missing-videos", str(listing)]) == 2
    assert len(listing.read_text().splitlines()) == 1  # the first two queries are about one video
    assert rarft_eval([*args, "--video-ext", "MP4", "--missing-videos", str(listing)]) == 0
    assert listing.read_text() == "" and len(lines(tmp_path / "p.jsonl")) == 2


@pytest.mark.parametrize("device, dtype", [("cuda", "fp16"), ("cuda:1", "fp16"), ("cpu", "fp32")])
def test_default_dtype_is_the_released_fp16_on_a_gpu(device, dtype):
    from rarft_eval.infer import default_dtype

    assert default_dtype(device) == dtype


def test_default_generation_limit_is_the_released_512_tokens():
    import argparse

    from rarft_eval.infer import RELEASED_MAX_NEW_TOKENS, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = parser.parse_args(["--model", "m", "--data", "d.json", "--out", "o.jsonl"])
    assert parsed.max_new_tokens == RELEASED_MAX_NEW_TOKENS == 512


def test_fp16_runs_on_a_cpu_when_asked(setup, complete, tmp_path):
    """The released dtype is not the CPU default (slow there), but it works: same rows, recorded as fp16."""
    out = tmp_path / "fp16.jsonl"
    assert infer(setup, out, "--dtype", "fp16", "--device", "cpu") == 0
    assert [json.loads(row)["id"] for row in lines(out)] == [json.loads(row)["id"] for row in lines(complete)]
    assert json.loads(meta_path(out).read_text())["dtype"] == "fp16"
