"""Every command against every bad input: one line naming the file (and record and field), a non-zero
exit, the inputs byte-identical afterwards and nothing written (`rarft_plugin.command_files`, the
readers of `rarft_plugin.io_utils`).

The table runs each command's `main` in this process; only the lock holder of the concurrent case is
a process of its own (an advisory lock is held by a process), and one test runs two real commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.openai_server import ChatServer

from rarft_plugin.command_files import CommandFiles, Output, claim, lock_path, staged_folder
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_files_atomic

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "rarft_plugin" / "samples"
SURROGATE = "\\ud800"  # as a JSON file holds it: valid JSON, no character


def with_text(value: object, text: str) -> str:
    """`value` as JSON with the string "PLACEHOLDER" in it replaced by `text`, written as it stands
    (so that a JSON escape such as a lone surrogate's reaches the file as an escape)."""
    return json.dumps(value).replace('"PLACEHOLDER"', '"' + text + '"', 1)


def released(text: str) -> str:
    """A released-schema file (the HI-VTG sample) whose first query holds `text`."""
    items = json.loads((SAMPLES / "hi_vtg_charades_sample.json").read_text())
    items[0]["GRPO"][0]["q"] = "PLACEHOLDER"
    return with_text(items, text)


def annotations(text: str) -> str:
    """Generic VTG annotations (`--format jsonl`) of four videos whose first query holds `text`."""
    rows = [
        {"video": f"v{i}.mp4", "query": f"a person does thing {i}", "timestamp": [1, 3], "duration": 10}
        for i in range(4)
    ]
    rows[0]["query"] = "PLACEHOLDER"
    return "".join(with_text(row, text) + "\n" for row in rows)


def first_line_with(path: Path, field: str, text: str) -> str:
    """The first line of a JSONL sample with `field` set to `text`."""
    row = json.loads(path.read_text().splitlines()[0])
    row[field] = "PLACEHOLDER"
    return with_text(row, text) + "\n"


SAMPLE_RUN: dict[str, Path] = {}  # the sample run's metrics.json (fixture `sample_run`)


def run_record(text: str) -> str:
    """A run's metrics.json, its name set to `text`."""
    run = json.loads(SAMPLE_RUN["metrics"].read_text())
    run["name"] = "PLACEHOLDER"
    return with_text(run, text)


def prep(argv):
    from rarft_prep.cli import main

    return main(argv)


def rarft_eval(argv):
    from rarft_eval.cli import main

    return main(argv)


def score(argv):
    from rarft_plugin.score_rollouts import main

    return main(argv)


def audit(argv):
    from rarft_eval.audit import main

    return main(argv)


def demo(argv):
    from rarft_plugin.demo import main

    return main(argv)


NOWHERE = "http://127.0.0.1:9/v1"  # nothing listens there: a command that got as far as the LLM would fail


@dataclass(frozen=True)
class Command:
    """One command line: its main, its argv for an input and an output path, what it reads."""

    name: str
    main: Callable[[list[str]], int]
    argv: Callable[[str, str], list[str]]
    input_name: str | None  # the input file's name (None: the command reads no file)
    content: Callable[[str], str] | None  # a valid input whose text field holds the argument
    surrogate_at: str  # where the error must point for a surrogate in that field
    folder: bool = False  # the output is a folder
    foreign: str | None = None  # an unrelated existing output the command would go on with (None: replaced whole)
    directory: str = "is a directory"  # what a directory given as the input is


COMMANDS = [
    Command(
        "split",
        prep,
        lambda i, o: ["split", i, "--train", o, "--eval", o + ".eval.json"],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
    ),
    Command(
        "ss-vtg",
        prep,
        lambda i, o: ["ss-vtg", i, "--format", "jsonl", "--out", o],
        "annotations.jsonl",
        annotations,
        "record line 1: field query",
    ),
    Command(
        "hi-vtg",
        prep,
        lambda i, o: ["hi-vtg", i, "--format", "jsonl", "--out", o, "--base-url", NOWHERE, "--model", "m"],
        "annotations.jsonl",
        annotations,
        "record line 1: field query",
    ),
    Command(
        "debias",
        prep,
        lambda i, o: ["debias", i, "--out", o],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
    ),
    Command(
        "to-openrlhf",
        prep,
        lambda i, o: ["to-openrlhf", i, o, "--no-probe"],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
    ),
    Command(
        "repair-tvgbench",
        prep,
        lambda i, o: ["repair-tvgbench", i, "--tvgbench", str(SAMPLES / "hi_vtg_charades_sample.json"), "--out", o],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
    ),
    Command(
        "infer",
        rarft_eval,
        lambda i, o: ["infer", "--model", "/nonexistent/model", "--data", i, "--out", o],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
        foreign='{"an unrelated": "file without its last newline"}',
    ),
    Command(
        "evaluate",
        rarft_eval,
        lambda i, o: ["evaluate", i, "--out", o, "--no-sbert"],
        "predictions.jsonl",
        lambda text: first_line_with(SAMPLES / "predictions.jsonl", "model_output", text),
        "record line 1: field model_output",
        folder=True,
        foreign="# my own report, not a run\n",
    ),
    Command(
        "compare",
        rarft_eval,
        lambda i, o: ["compare", i, "--out", o],
        "metrics.json",
        run_record,
        "field name",
        directory="metrics.json: file not found",  # a run folder is an input too: its metrics.json is read
    ),
    Command(
        "rarft-score",
        score,
        lambda i, o: [i, "--out", o],
        "rollouts.jsonl",
        lambda text: first_line_with(SAMPLES / "rollouts.jsonl", "response", text),
        "record line 1: field response",
    ),
    Command(
        "rarft-audit",
        audit,
        lambda i, o: [i, "--out", o],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
        folder=True,
        foreign='{"not": "an audit"}\n',
    ),
    Command(
        "make-assets",
        demo,
        lambda i, o: ["make-assets", "--data", i, "--out", o, "--no-model"],
        "data.json",
        released,
        "record 0: field GRPO[0].q",
        folder=True,
    ),
    Command(
        "rarft-demo",
        demo,
        lambda i, o: ["--out", o],
        None,
        None,
        "",
        folder=True,
        foreign='{"my": "predictions"}\n',
    ),
]

# What each bad input is and what the one line must say (besides the file's name).
BAD_INPUTS = {
    "directory": "is a directory",
    "nested JSON": "nested too deeply",
    "binary": "not UTF-8",
    "surrogate": "lone surrogate",
    "read-only output folder": "is not writable",
    "output = input": "",
    "existing unrelated --out": "",
    "concurrent --out": "is being written by another process (pid ",
}
INPUT_CASES = ("directory", "nested JSON", "binary", "surrogate", "output = input")


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under `root` with its bytes (folders: their mode), to compare before and after."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else oct(path.stat().st_mode)
    return found


def hold_lock(output: Path) -> subprocess.Popen:
    """Another process holding `output`'s lock as a command does (pid and command line in the file)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(handle, fcntl.LOCK_EX)\n"
            "os.write(handle, f'pid {os.getpid()}: rarft-prep something'.encode())\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            str(lock_path(output)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def cases():
    for command in COMMANDS:
        for bad in BAD_INPUTS:
            if command.input_name is None and bad in INPUT_CASES:
                continue  # reads no file
            if bad == "existing unrelated --out" and command.foreign is None:
                continue  # its outputs are replaced whole (test_replaced_outputs_are_replaced_whole)
            yield pytest.param(command, bad, id=f"{command.name}-{bad}")


@pytest.fixture(autouse=True, scope="module")
def sample_run(tmp_path_factory):
    """A run of `rarft-eval evaluate` on the sample predictions: compare's input."""
    folder = tmp_path_factory.mktemp("runs") / "sample-run"
    assert rarft_eval(["evaluate", str(SAMPLES / "predictions.jsonl"), "--out", str(folder), "--no-sbert"]) == 0
    SAMPLE_RUN["metrics"] = folder / "metrics.json"


@pytest.mark.parametrize("command, bad", cases())
def test_every_command_refuses_every_bad_input_in_one_line(command, bad, tmp_path, capsys):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    source = inputs / (command.input_name or "none")
    if command.input_name is not None:
        if bad == "directory":
            source.mkdir()
        elif bad == "nested JSON":
            source.write_text("[" * 100_000 + "]" * 100_000 + "\n")
        elif bad == "binary":
            source.write_bytes(bytes(range(256)) * 8)
        else:
            source.write_text(command.content(SURROGATE if bad == "surrogate" else "a person opens the door"))
    target = source if bad == "output = input" else outputs / ("result" if command.folder else "result.json")
    if bad == "existing unrelated --out":
        if command.folder:
            target.mkdir()
            unrelated = {"evaluate": "metrics.json", "rarft-audit": "audit.json", "rarft-demo": "predictions.jsonl"}
            (target / unrelated[command.name]).write_text(command.foreign)
        else:
            target.write_text(command.foreign)
    holder = hold_lock(target) if bad == "concurrent --out" else None
    if bad == "read-only output folder":
        outputs.chmod(0o555)
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        status = command.main(command.argv(str(source), str(target)))
        after = snapshot(tmp_path)
    finally:
        outputs.chmod(0o755)
        if holder is not None:
            holder.communicate("")
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(source if bad in INPUT_CASES else target) in err, err
    assert (command.directory if bad == "directory" else BAD_INPUTS[bad]) in err, err
    if bad == "surrogate":
        assert command.surrogate_at in err, err
    if holder is not None:
        assert f"pid {holder.pid}: rarft-prep something" in err, err
    assert after == before  # inputs byte-identical, nothing written, no lock or temporary file left


@pytest.mark.parametrize("name", ["split", "ss-vtg", "compare"])
def test_replaced_outputs_are_replaced_whole(name, tmp_path, capsys):
    """An existing output a command does not go on with is replaced by the whole new one (as `cp` does):
    such a command is not refused on it, and the old bytes are gone, not mixed in."""
    command = next(c for c in COMMANDS if c.name == name)
    source = tmp_path / command.input_name
    source.write_text(command.content("a person opens the door"))
    target = tmp_path / "result.json"
    target.write_text("old bytes of another file\n")
    assert command.main(command.argv(str(source), str(target))) == 0, capsys.readouterr().err
    assert "old bytes" not in target.read_text()


def test_a_second_real_process_on_the_same_out_is_refused_naming_the_first(tmp_path):
    """Two `rarft-prep hi-vtg` processes on one --out: the second fails at once, naming the first's pid;
    the first finishes its job."""
    from support.hi_vtg_llm import hi_vtg_reply as scripted
    from support.hi_vtg_llm import source_file

    source = source_file(tmp_path, count=2)
    out = tmp_path / "hi.json"
    release = threading.Event()

    def slow(request):  # the first process waits here until the second has been refused
        release.wait(60)
        return scripted(request)

    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    with ChatServer(slow) as server:
        command = [sys.executable, "-m", "rarft_prep.cli", "hi-vtg", str(source), "--format", "jsonl"]
        command += ["--out", str(out), "--base-url", server.url, "--model", "m", "--concurrency", "1"]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        release.set()
        _, err = first.communicate(timeout=120)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == (
        f"rarft-prep hi-vtg: error: {out}: is being written by another process (pid {first.pid}: "
        f"rarft-prep {' '.join(command[3:])}); wait for it to end, or write elsewhere"
    )
    assert first.returncode == 0, err
    assert len(json.loads(out.read_text())) == 2 and not lock_path(out).exists()


def test_a_lock_left_by_a_killed_process_is_taken(tmp_path):
    output = tmp_path / "out.json"
    holder = hold_lock(output)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(output).exists()
    with claim(CommandFiles.of(outputs=[output]), holder="test"):
        assert "pid" in lock_path(output).read_text()
    assert not lock_path(output).exists()


@pytest.mark.parametrize(
    "outputs, message",
    [
        (lambda t: [t / "a.json", t / "a.json"], "is the same file as another output"),
        (lambda t: [t / "a.json", t / "sub" / ".." / "a.json"], "is the same file as another output"),
        (lambda t: [Output(t / "in.json", folder=True)], "is a file, expected a folder"),
        (lambda t: [Output(t, folder=True, entries=("in.json",))], "is the same file as the input"),
        (lambda t: [t / "link.json"], "is the same file as the input"),
        (lambda t: [t / "in.json" / "x.json"], "is not a folder, so nothing can be written under it"),
    ],
)
def test_claim_refuses(tmp_path, outputs, message):
    (tmp_path / "in.json").write_text("[]")
    (tmp_path / "link.json").symlink_to(tmp_path / "in.json")
    with pytest.raises(DataError, match=message):
        with claim(CommandFiles.of(inputs=[tmp_path / "in.json"], outputs=outputs(tmp_path)), holder="test"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "link.json"]


def test_folders_made_for_a_refused_command_are_removed(tmp_path):
    def refuse(path):
        return "not mine"

    with pytest.raises(DataError, match="not mine"):
        (tmp_path / "deep").mkdir()
        (tmp_path / "deep" / "out.json").write_text("x")
        with claim(CommandFiles.of(outputs=[Output(tmp_path / "deep" / "out.json", resumes=refuse)]), holder="t"):
            pass
    with pytest.raises(KeyboardInterrupt):
        with claim(CommandFiles.of(outputs=[tmp_path / "a" / "b" / "out.json"]), holder="t"):
            raise KeyboardInterrupt
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["deep", "deep/out.json"]


def test_a_staged_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(out, ("a.txt", "b.txt")) as staging:
            (staging / "a.txt").write_text("a")
            raise KeyboardInterrupt  # interrupted half-way
    assert list(tmp_path.iterdir()) == []
    with staged_folder(out, ("a.txt", "b.txt")) as staging:
        (staging / "a.txt").write_text("a")
        (staging / "b.txt").write_text("b")
    (out / "mine.txt").write_text("kept")
    with staged_folder(out, ("a.txt", "b.txt"), last="a.txt") as staging:
        (staging / "a.txt").write_text("new a")  # b.txt is not part of this result: removed
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "new a", "mine.txt": "kept"}
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_several_files_are_all_replaced_or_none(tmp_path, monkeypatch):
    import rarft_plugin.io_utils as io_utils

    first, second = tmp_path / "train.json", tmp_path / "eval.json"
    first.write_text("old train")
    staged = io_utils._staged

    def full_disk(path, content):
        if path == second:
            raise OSError(28, "No space left on device")
        return staged(path, content)

    monkeypatch.setattr(io_utils, "_staged", full_disk)
    with pytest.raises(OSError):
        write_files_atomic({first: "new train", second: "new eval"})
    assert first.read_text() == "old train" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.json"]  # no temporary file left


def test_an_interrupted_evaluation_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    from rarft_eval import report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plots", interrupted)  # after metrics.json, before the report
    out = tmp_path / "run"
    assert rarft_eval(["evaluate", str(SAMPLES / "predictions.jsonl"), "--out", str(out), "--no-sbert"]) == 130
    assert capsys.readouterr().err == "rarft-eval: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_infer_refuses_a_zero_token_limit_before_anything_loads(tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text(released("a person opens the door"))
    with pytest.raises(SystemExit) as exit:
        rarft_eval(["infer", "--model", "/nonexistent", "--data", str(data), "--out", str(tmp_path / "p.jsonl"),
                    "--max-new-tokens", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and "--max-new-tokens: must be at least 1" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]
