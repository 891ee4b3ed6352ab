"""What every command line shares: Ctrl-C, file modes, and refusing to succeed on nothing."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.openai_server import ChatServer

from rarft_plugin.io_utils import write_atomic, write_jsonl_atomic

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "rarft_plugin" / "samples"


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _cases(tmp_path):
    """(entry point, argv, (module, attribute) that the command calls while it works)."""
    from rarft_eval.cli import main as rarft_eval
    from rarft_plugin.demo import main as demo
    from rarft_plugin.score_rollouts import main as score
    from rarft_plugin.train import main as train
    from rarft_prep.cli import main as prep

    hi = str(SAMPLES / "hi_vtg_charades_sample.json")
    return {
        "rarft-prep": (
            prep,
            ["split", hi, "--train", str(tmp_path / "t.json"), "--eval", str(tmp_path / "e.json")],
            ("rarft_prep.splits", "split_items"),
        ),
        "rarft-eval": (
            rarft_eval,
            ["evaluate", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "run")],
            ("rarft_eval.evaluate", "run"),
        ),
        "rarft-score": (
            score,
            [str(SAMPLES / "rollouts.jsonl"), "--out", str(tmp_path / "r.jsonl")],
            ("rarft_plugin.score_rollouts", "run"),
        ),
        "rarft-train": (train, ["--rarft.dry_run"], ("rarft_plugin.train", "prepare")),
        "rarft-demo": (demo, ["--out", str(tmp_path / "demo")], ("rarft_plugin.demo", "run_cli")),
    }


@pytest.mark.parametrize("prog", ["rarft-prep", "rarft-eval", "rarft-score", "rarft-train", "rarft-demo"])
def test_ctrl_c_prints_one_line_and_exits_130(prog, tmp_path, monkeypatch, capsys):
    import importlib

    (tmp_path / "p.jsonl").write_text((SAMPLES / "predictions.jsonl").read_text())
    main, argv, (module, attribute) = _cases(tmp_path)[prog]
    monkeypatch.setattr(importlib.import_module(module), attribute, _interrupt)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"{prog}: interrupted\n"


def test_ctrl_c_in_a_real_run_leaves_resumable_work(tmp_path):
    """SIGINT while hi-vtg waits on the LLM: one line, status 130, and the rerun finishes the job.

    The third request is held unanswered until the signal has been sent: the run cannot finish first,
    however slowly this machine schedules the test (a timed latency left that a race)."""
    from support.hi_vtg_llm import hi_vtg_reply as scripted
    from test_data_prep import source_file

    source = source_file(tmp_path, count=6)
    out = tmp_path / "hi.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    signalled = threading.Event()

    def held(request):
        if len(server.requests) >= 3:
            signalled.wait(60)
        return scripted(request)

    with ChatServer(held) as server:
        command = [
            sys.executable,
            "-m",
            "rarft_prep.cli",
            "hi-vtg",
            str(source),
            "--format",
            "jsonl",
            "--out",
            str(out),
            "--base-url",
            server.url,
            "--model",
            "m",
            "--concurrency",
            "1",
        ]
        # SIGINT's default action in the child: a suite started in the background (`cmd &` in a script) passes
        # SIGINT on ignored, and Python then installs no KeyboardInterrupt handler
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 300  # a cold machine imports slowly
        while len(server.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.requests) >= 3, "hi-vtg never reached the LLM"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        signalled.set()
        assert process.returncode == 130
        assert "Traceback" not in err and err.rstrip().splitlines()[-1] == "rarft-prep: interrupted"
        assert not out.exists()
        assert subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).returncode == 0
    assert len(json.loads(out.read_text())) == 6


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        write_jsonl_atomic(tmp_path / "b.jsonl", [{"a": 1}])
        write_atomic(tmp_path / "a.txt", "rewritten")  # replacing a file too
    finally:
        os.umask(previous)
    assert {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.txt", "b.jsonl")} == {mode}


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_rarft_score_on_an_empty_file_fails(tmp_path, capsys, content):
    from rarft_plugin.score_rollouts import main as score

    rollouts = tmp_path / "empty.jsonl"
    rollouts.write_text(content)
    assert score([str(rollouts), "--out", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(rollouts) in err and "no rollouts" in err
    assert not (tmp_path / "r.jsonl").exists()
