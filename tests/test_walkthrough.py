"""The README's walkthrough, run as written in a fresh folder (the test breaks when the README drifts)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.hi_vtg_llm import hi_vtg_reply
from support.openai_server import ChatServer

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHIPPED = ("hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json")
# The commands the README uses, and the module each console script runs (pyproject.toml [project.scripts]).
COMMANDS = {
    "rarft-prep": "rarft_prep.cli",
    "rarft-eval": "rarft_eval.cli",
    "rarft-train": "rarft_plugin.train",
    "rarft-demo": "rarft_plugin.demo",
    "rarft-score": "rarft_plugin.score_rollouts",
}


def walkthrough_block(markdown: str) -> str:
    """The first ```bash block of the section whose heading starts with `## Walkthrough`."""
    section = re.search(r"^## Walkthrough.*?$(.*?)(?=^## )", markdown, re.DOTALL | re.MULTILINE)
    assert section, "README.md has no '## Walkthrough' section"
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.DOTALL | re.MULTILINE)
    assert block, "the walkthrough section has no ```bash block"
    return block.group(1)


def command_shims(directory: Path) -> Path:
    """`rarft-*` on PATH running this checkout's code (an installed console script may point elsewhere)."""
    directory.mkdir()
    for name, module in COMMANDS.items():
        shim = directory / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    return directory


def test_the_walkthrough_uses_only_known_commands():
    used = set(re.findall(r"^\s*(rarft-[a-z]+)", walkthrough_block(README.read_text()), re.MULTILINE))
    assert used and used <= set(COMMANDS)
    declared = set(
        re.findall(r"^(rarft-[a-z]+) = \"([\w.]+):main\"", (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    )
    assert {(name, COMMANDS[name]) for name in used} <= declared


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tmp_path):
    block = walkthrough_block(README.read_text())
    work = tmp_path / "fresh"
    work.mkdir()
    shims = command_shims(tmp_path / "bin")
    fresh_shell = {k: v for k, v in os.environ.items() if not k.startswith("RARFT_")}  # as a new user has it
    env = {
        **fresh_shell,
        "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "LLM_MODEL": "scripted",
    }
    with ChatServer(hi_vtg_reply) as server:
        env["LLM_URL"] = server.url
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=900
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {r["model"] for r in server.requests} == {"scripted"}
    assert len(json.loads((work / "hi_vtg.json").read_text())) == 4  # one item per relevant query of the sample
    prompts = (work / "train.jsonl").read_text().splitlines()
    predictions = (work / "preds.jsonl").read_text().splitlines()
    assert prompts and predictions
    assert "openrlhf.cli.train_ppo_ray" in done.stdout  # the dry run printed the final command
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert metrics["count"]["queries"] == len(predictions) and metrics["name"] == "tiny (random)"
    assert metrics["format"]["template"] == "ra_rft" and metrics["format"]["template_source"] == "recorded"
    comparison = (work / "compare.md").read_text()
    assert "- **tiny (random)** (`run`)" in comparison
    assert (
        "| paper Table 1: Time-R1 + RA-RFT (ours) | - | - | 62.4 | 55.5 | 45.8 | 53.1 | 72.5 | 69.2 | 70.8 |"
        in comparison
    )


def walkthrough_step(block: str, number: int) -> str:
    """Step `number` of the walkthrough block: from its `# N.` comment to the next step's."""
    step = re.search(rf"^# {number}\..*?(?=^# {number + 1}\.|\Z)", block, re.DOTALL | re.MULTILINE)
    assert step, f"the walkthrough has no step {number}"
    return step.group(0)


def test_step_2_works_as_written_against_a_slow_one_request_at_a_time_server(tmp_path):
    """The build step with its defaults against a server like llama.cpp's: one request at a time, slow.

    The defaults must not swamp it (one request in flight, as the server has no /props), and must
    bound every reply (max_tokens), so a run gives up nothing and leaves the server nothing to drain.
    """
    step = walkthrough_step(walkthrough_block(README.read_text()), 2)
    work = tmp_path / "fresh"
    (work / "assets" / "samples").mkdir(parents=True)  # what step 1 puts there
    shutil.copy(REPO / "rarft_plugin" / "samples" / "hi_vtg_charades_sample.json", work / "assets" / "samples")
    env = {
        **os.environ,
        "PATH": f"{command_shims(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "LLM_MODEL": "scripted",
    }
    with ChatServer(hi_vtg_reply, latency_s=0.3, one_at_a_time=True) as server:
        env["LLM_URL"] = server.url
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", step], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(json.loads((work / "hi_vtg.json").read_text())) == 4  # one item per relevant query of the sample
    assert server.peak == 1 and server.abandoned == 0  # never more than the server serves at once
    assert all(isinstance(r.get("max_tokens"), int) for r in server.requests)  # every reply bounded
    assert "concurrency 1: a local server" in done.stdout


def test_no_documented_command_trains_on_a_released_evaluation_file():
    texts = {
        path: path.read_text() for path in [README, *(REPO / "docs").glob("*.md"), *(REPO / "recipes").glob("*.sh")]
    }
    for path, text in texts.items():
        for name in SHIPPED:
            assert not re.search(rf"to-openrlhf\s+\S*{re.escape(name)}", text), f"{path} trains on {name}"
    readme = texts[README]
    evaluation_sets = readme[readme.index("**evaluation sets**") - 300 : readme.index("**evaluation sets**") + 400]
    assert all(name in evaluation_sets for name in SHIPPED)
