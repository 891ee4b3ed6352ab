"""Importers, HI-VTG / SS-VTG builders and splits, against a local chat-completions server."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.cli import main as prep
from data_prep.hi_vtg import Invalid, plans_for, validate_categories, validate_negatives
from data_prep.importers import import_records
from rarft_plugin.dataset import load_examples, load_items
from rarft_plugin.errors import DataError
from rarft_plugin.taxonomy import category_tag
from support.openai_server import ChatServer, Fault, system_text, user_text

CATS = ["Object/ObjectExistence", "Action/FineGrainedAction", "Scene/SceneExistence"]


# ---- importers ---------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


FORMATS = {
    "charades": ("a.txt", "V1 1.0 4.5##a person opens a door.\nV1 5 9##a person sits down.\nV2 0 3##someone laughs.\n",
                 {"V1": 20.0, "V2": 10.0}),
    "activitynet": ("a.json", json.dumps({"v_1": {"duration": 30.0, "timestamps": [[0, 5], [6, 12]],
                                                  "sentences": ["A man runs.", "He jumps."]}}), None),
    "qvhighlights": ("a.jsonl", json.dumps({"qid": 1, "query": "a dog barks", "vid": "q1", "duration": 150,
                                            "relevant_windows": [[10, 20], [40, 50]]}) + "\n", None),
    "tvgbench": ("a.json", json.dumps([{"video": "t.mp4", "question": "a cat jumps", "timestamp": [1, 2],
                                        "duration": 10, "video_start": 5, "video_end": 12}]), None),
    "jsonl": ("a.jsonl", json.dumps({"video": "g.mp4", "query": "a car turns", "timestamp": [2, 3],
                                     "duration": 8}) + "\n", None),
}


@pytest.mark.parametrize("fmt, expected", [("charades", 3), ("activitynet", 2), ("qvhighlights", 1),
                                             ("tvgbench", 1), ("jsonl", 1)])
def test_importers(tmp_path, fmt, expected):
    name, content, durations = FORMATS[fmt]
    source = write(tmp_path / name, content)
    duration_file = write(tmp_path / "d.json", json.dumps(durations)) if durations else None
    records, rejects = import_records(source, fmt, duration_file)
    assert len(records) == expected and rejects == []
    assert all(r.duration > 0 and r.timestamp[0] <= r.timestamp[1] for r in records)
    if fmt in ("charades", "activitynet"):  # dense captions of the same video become the context
        assert len(records[0].video_context) == 2 and records[0].video_context[0].endswith(records[0].query)


def test_released_file_imports_and_reports_spans_beyond_the_video(official_data):
    records, rejects = import_records(official_data / "hi_vtg_charades.json", "released")
    assert len(records) + len(rejects) == 1097 and rejects
    assert all("ends after" in r["reason"] for r in rejects)


@pytest.mark.parametrize(
    "fmt, content, message",
    [
        ("charades", "V9 1 2##x\n", "no duration"),
        ("charades", "garbage line\n", "VID START END"),
        ("jsonl", json.dumps({"video": "g", "query": "", "timestamp": [1, 2], "duration": 3}) + "\n", "field query"),
        ("jsonl", json.dumps({"video": "g", "query": "q", "timestamp": "1-2", "duration": 3}) + "\n", "field timestamp"),
        ("activitynet", "[1]", "JSON object"),
    ],
)
def test_importer_errors_name_file_and_record(tmp_path, fmt, content, message):
    source = write(tmp_path / "bad.txt", content)
    with pytest.raises(DataError, match=message) as caught:
        import_records(source, fmt, write(tmp_path / "d.json", "{}"))
    assert str(source) in str(caught.value)


def test_tvgbench_clip_offsets_that_do_not_fit_are_rejected(tmp_path):
    rows = [{"video": "t.mp4", "query": "ok", "timestamp": [1, 2], "duration": 60, "video_start": 10, "video_end": 20},
            {"video": "t.mp4", "query": "offset", "timestamp": [31, 35], "duration": 60, "video_start": 30,
             "video_end": 33}]
    records, rejects = import_records(write(tmp_path / "t.json", json.dumps(rows)), "tvgbench")
    assert [r.query for r in records] == ["ok"] and "clip" in rejects[0]["reason"]


# ---- validation of LLM answers -------------------------------------------------------------
def negs(original="a person opens a door.", **overrides):
    out = {}
    for plan in plans_for(CATS):
        blocks = "".join(f"<{category_tag(c)}>not {c}</{category_tag(c)}>" for c in plan["applied_categories"])
        out[plan["difficulty"]] = {"irrel_query": f"a dog opens a window ({plan['difficulty']})",
                                   "applied_categories": [{"path": c} for c in plan["applied_categories"]],
                                   "reasoning": f"<irrelevant_answer>The video shows a person.</irrelevant_answer>{blocks}",
                                   "difficulty_tag": plan["difficulty"]}
    for tag, changes in overrides.items():
        out[tag].update(changes)
    return json.dumps({"negs": out})


@pytest.mark.parametrize(
    "reply, message",
    [
        ("not json", "no JSON object"),
        ('{"eligible_categories": []}', "no eligible_categories"),
        ('{"eligible_categories": [{"path": "Object/Colour"}]}', "not in the taxonomy"),
    ],
)
def test_category_answers_are_validated(reply, message):
    with pytest.raises(Invalid, match=message):
        validate_categories(reply)


def test_category_answer_keeps_top_three():
    reply = json.dumps({"eligible_categories": [{"path": c, "reason": "r"} for c in CATS + ["Attribute/Counting"]]})
    assert validate_categories("Here: " + reply) == CATS


@pytest.mark.parametrize(
    "reply, message",
    [
        (negs(hard={"irrel_query": "A person opens a door!"}), "equals the original"),
        (negs(medium={"applied_categories": [{"path": "Attribute/Counting"}]}), "differ from the plan"),
        (negs(easy={"reasoning": "no blocks here"}), "no <irrelevant_answer> block"),
        (negs(easy={"reasoning": "<irrelevant_answer>x</irrelevant_answer>"}), "no <object_objectexistence> block"),
        (json.dumps({"negs": {"hard": {}}}), "empty irrel_query"),
        (json.dumps({"negs": {}}), "missing from negs"),
        ('{"negs": ', "no JSON object"),
    ],
)
def test_generation_answers_are_validated(reply, message):
    with pytest.raises(Invalid, match=message):
        validate_negatives(reply, plans_for(CATS), "a person opens a door.")


# ---- the builder against a scripted server -------------------------------------------------
def scripted(request, *, categories=None, generation=None):
    if system_text(request).startswith("You are a multi-label classifier"):
        return categories or json.dumps({"eligible_categories": [{"path": c, "reason": "r"} for c in CATS]})
    query = json.loads(user_text(request))["related_query"]
    return generation or negs(query)


def unchanged_query(request):
    """A generation answer whose strong query is the original one, unchanged."""
    payload = user_text(request)
    if system_text(request).startswith("You are a multi-label classifier"):
        return None
    query = json.loads(payload)["related_query"]
    return negs(query, hard={"irrel_query": query})


def source_file(tmp_path, count=6):
    rows = [{"video": f"v{i % 3}.mp4", "query": f"a person does thing number {i}", "timestamp": [i, i + 2],
             "duration": 40} for i in range(count)]
    return write(tmp_path / "in.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def hi_vtg(tmp_path, server, *extra):
    return prep(["hi-vtg", str(source_file(tmp_path)), "--format", "jsonl", "--out", str(tmp_path / "hi.json"),
                 "--base-url", server.url, "--model", "m", "--retry-backoff", "0.01", *extra])


def test_build_writes_the_released_schema(tmp_path, capsys):
    with ChatServer(scripted) as server:
        assert hi_vtg(tmp_path, server) == 0
    items = load_items(tmp_path / "hi.json")
    assert len(items) == 6
    examples, _ = load_examples(tmp_path / "hi.json")
    levels = sorted(e.label.difficulty for e in examples if not e.label.relevant)
    assert levels == ["moderate"] * 6 + ["strong"] * 6 + ["weak"] * 6
    weak = next(e for e in examples if e.label.difficulty == "weak")
    assert weak.label.categories == tuple(CATS) and weak.label.answer_refusal == "The video shows a person."
    assert "items: 6" in capsys.readouterr().out


@pytest.mark.parametrize(
    "responder, reason",
    [
        (lambda r: scripted(r, categories="I think Object/ObjectExistence"), "categories: no JSON object"),
        (lambda r: scripted(r, categories=json.dumps({"eligible_categories": [{"path": "Object/Car"}]})),
         "categories: category not in the taxonomy"),
        (lambda r: scripted(r, generation="{not json}"), "generation: invalid JSON"),
        (lambda r: scripted(r, generation=unchanged_query(r)), "generation: hard: irrelevant query equals the original"),
        (lambda r: scripted(r, generation=negs("x", easy={"applied_categories": [{"path": "Attribute/Counting"}]})),
         "generation: easy: applied_categories"),
    ],
)
def test_invalid_answers_are_retried_then_rejected_with_the_reason(tmp_path, responder, reason):
    with ChatServer(responder) as server:
        assert hi_vtg(tmp_path, server, "--max-attempts", "2") == 0
    rejects = [json.loads(line) for line in (tmp_path / "hi.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 6 and all(r["reason"].startswith(reason) for r in rejects)
    assert json.loads((tmp_path / "hi.json").read_text()) == []
    assert len(server.requests) <= 6 * 2 * 2  # bounded: at most max-attempts asks per stage


def test_transient_faults_are_survived(tmp_path):
    seen = {}

    def faulty(request):
        key = json.dumps(request["messages"])
        seen[key] = seen.get(key, 0) + 1
        return {1: Fault(status=429), 2: Fault(status=500), 3: Fault(drop=True)}.get(seen[key]) or scripted(request)

    with ChatServer(faulty) as server:
        assert hi_vtg(tmp_path, server) == 0
    assert len(load_items(tmp_path / "hi.json")) == 6


def test_dry_run_prints_prompts_and_sends_nothing(tmp_path, capsys):
    assert prep(["hi-vtg", str(source_file(tmp_path)), "--format", "jsonl", "--out", str(tmp_path / "o.json"),
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "multi-label classifier" in printed and "hard negative" in printed and not (tmp_path / "o.json").exists()


def test_kill_9_and_resume(tmp_path):
    rows = [{"video": f"v{i % 5}.mp4", "query": f"query {i}", "timestamp": [1, 2], "duration": 9} for i in range(30)]
    source = write(tmp_path / "in.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "hi.json"
    with ChatServer(scripted, latency_s=0.05) as server:
        command = [sys.executable, "-m", "data_prep.cli", "hi-vtg", str(source), "--format", "jsonl", "--out",
                   str(out), "--base-url", server.url, "--model", "m", "--concurrency", "2"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        deadline = time.monotonic() + 60
        while len(server.requests) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        asked_first = [json.dumps(r["messages"]) for r in server.requests]
        assert not out.exists()
        assert subprocess.run(command, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}).returncode == 0
        asked_again = [json.dumps(r["messages"]) for r in server.requests[len(asked_first):]]
    items = json.loads(out.read_text())
    assert sorted(item["query_text"] for item in items) == sorted(f"query {i}" for i in range(30))  # none lost, no dups
    answered_first = set(asked_first[:-2])  # requests in flight at the kill may be asked again, nothing else
    assert len(set(asked_again) & answered_first) <= 2


# ---- SS-VTG and splits -------------------------------------------------------------------------
def test_ss_vtg_never_shuffles_within_a_video_and_is_seeded(tmp_path):
    source = source_file(tmp_path, count=30)
    for name in ("a.json", "b.json"):
        assert prep(["ss-vtg", str(source), "--format", "jsonl", "--out", str(tmp_path / name), "--seed", "7"]) == 0
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    examples, _ = load_examples(tmp_path / "a.json")
    assert sum(e.label.relevant for e in examples) == sum(not e.label.relevant for e in examples) == 30
    rows = {f"a person does thing number {i}": f"v{i % 3}.mp4" for i in range(30)}
    for item in load_items(tmp_path / "a.json"):
        irrelevant = next(q for q in item.queries if not q.relevant)
        assert rows[irrelevant.query] != item.video and irrelevant.difficulty == "shuffled"


def test_splits(tmp_path):
    with ChatServer(scripted) as server:
        rows = [{"video": f"v{i}.mp4", "query": f"query {i}", "timestamp": [1, 2], "duration": 9} for i in range(20)]
        source = write(tmp_path / "in.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        prep(["hi-vtg", str(source), "--format", "jsonl", "--out", str(tmp_path / "hi.json"), "--base-url",
              server.url, "--model", "m"])
    args = ["split", str(tmp_path / "hi.json"), "--train", str(tmp_path / "train.json"), "--eval",
            str(tmp_path / "eval.json"), "--eval-fraction", "0.25", "--seed", "1"]
    assert prep(args) == 0
    train, evaluation = load_items(tmp_path / "train.json"), load_items(tmp_path / "eval.json")
    assert (len(train), len(evaluation)) == (15, 5)
    assert not {i.video for i in train} & {i.video for i in evaluation}
    assert all([q.relevant for q in i.queries] == [True, False, False, False] for i in train)
    assert all([q.relevant for q in i.queries] == [True, False] for i in evaluation)
    first = (tmp_path / "eval.json").read_text()
    prep(args)
    assert (tmp_path / "eval.json").read_text() == first
