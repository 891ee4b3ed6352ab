"""rarft-prep debias and the leakage options of rarft-prep hi-vtg (data_prep/debias.py)."""

import json
from collections import Counter

import pytest
from support.hi_vtg_llm import hi_vtg as run_hi_vtg
from support.hi_vtg_llm import hi_vtg_reply, source_file
from support.openai_server import ChatServer, system_text, user_text

from rarft_plugin import dataset
from rarft_plugin.dataset import item_span_problem, load_examples, load_items
from rarft_plugin.io_utils import file_sha256
from rarft_plugin.llm_prompts import GENERATION_SUBSTITUTES
from rarft_plugin.schema import dump_item
from rarft_prep.cli import main as prep
from rarft_prep.debias import substitute_vocabulary


@pytest.fixture(scope="module")
def leaky_file(official_data, tmp_path_factory):
    """The first 500 items of the released HI-Charades file whose span fits their video (its generator's
    vocabulary leak included; a file other than the released one may not hold the others)."""
    items = load_items(official_data / "hi_vtg_charades.json")
    fitting = [dump_item(item) for item in items if not item_span_problem(item)][:500]
    path = tmp_path_factory.mktemp("debias") / "hi.json"
    path.write_text(json.dumps(fitting))
    return path


@pytest.fixture(scope="module")
def debiased(leaky_file):
    out = leaky_file.with_name("debiased.json")
    assert prep(["debias", str(leaky_file), "--out", str(out)]) == 0
    return out, json.loads(out.with_suffix(".debias.json").read_text())


def test_debias_brings_the_text_only_auc_down_on_fresh_folds_and_keeps_every_level(debiased):
    out, report = debiased
    assert report["before"]["auc"] > 0.75 and report["reached"]
    assert report["after"]["auc"] <= 0.6 and report["after"]["seed"] != report["before"]["seed"]
    kept = report["kept"]
    assert kept["relevant"]["kept"] == kept["relevant"]["of"] == 500  # every relevant query stays
    for level in ("strong", "moderate", "weak"):
        assert kept[level]["of"] * 0.25 <= kept[level]["kept"] < kept[level]["of"]
    assert report["produced_by"]["options"] == {"target_auc": 0.55, "min_keep": 0.25, "seed": 0}


def test_debias_only_removes_dropped_entries_and_writes_through_the_schema(leaky_file, debiased):
    out, report = debiased
    before, after = load_items(leaky_file), load_items(out)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        dropped = set(report["dropped"].get(str(old.index), []))
        assert new.queries == tuple(q for i, q in enumerate(old.queries) if i not in dropped)
        assert (new.video, new.timestamp, new.duration, new.think) == (
            old.video,
            old.timestamp,
            old.duration,
            old.think,
        )
    expected = json.dumps([dump_item(item) for item in after], ensure_ascii=False, indent=1) + "\n"
    assert out.read_text(encoding="utf-8") == expected
    examples, _ = load_examples(out)  # every kept irrelevant query still has its q_r
    assert all(e.label.query_relevant for e in examples if not e.label.relevant)


def test_debias_of_a_released_file_leaves_out_the_spans_no_video_holds(
    official_data, leaky_file, tmp_path, capsys, monkeypatch
):
    """A released file may hold spans its video cannot (its known defect); the output may not, so that it loads."""
    impossible = next(item for item in load_items(official_data / "hi_vtg_charades.json") if item_span_problem(item))
    source = tmp_path / "released.json"
    source.write_text(json.dumps(json.loads(leaky_file.read_text()) + [dump_item(impossible)]))
    monkeypatch.setitem(dataset.RELEASED_FILES, file_sha256(source), "HI-Charades")  # as if it were one
    out = tmp_path / "out.json"
    assert prep(["debias", str(source), "--out", str(out)]) == 0
    assert "warning: 1 items left out: their span ends after the video's duration" in capsys.readouterr().out
    monkeypatch.undo()
    assert len(load_items(out)) == 500  # loads as a file of ours
    assert json.loads(out.with_suffix(".debias.json").read_text())["left_out"] == {"items": 1, "first": 500}


def test_debias_that_cannot_reach_its_target_writes_nothing(leaky_file, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert prep(["debias", str(leaky_file), "--out", str(out), "--target-auc", "0.3", "--min-keep", "0.9"]) == 1
    assert "NOT reached" in capsys.readouterr().out and not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{in}", "--out", "{in}"], "is the same file as the input"),
        (["{missing}", "--out", "{out}"], "file not found"),
        (["{bad}", "--out", "{out}"], "record 0: field GRPO"),
    ],
)
def test_debias_bad_input_is_one_line_and_writes_nothing(leaky_file, tmp_path, capsys, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"video": "v.mp4"}]')
    paths = {"in": leaky_file, "missing": tmp_path / "none.json", "bad": bad, "out": tmp_path / "out.json"}
    before = leaky_file.read_bytes()
    assert prep(["debias", *(a.format(**paths) for a in args)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rarft-prep debias: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out.json").exists() and leaky_file.read_bytes() == before


QUERIES = ["person opens a door", "person opens a box", "a man reads a book", "person reads a letter"]


@pytest.mark.parametrize(
    "own, absent",
    [
        ("person opens a box", {"opens", "box", "person", "a"}),  # its own words and no stopword
        ("nothing shared", {"person", "a"}),
    ],
)
def test_substitute_vocabulary_draws_other_content_words(own, absent):
    words = substitute_vocabulary(QUERIES, own, seed="k", count=10)
    assert not set(words) & absent and len(words) == len(set(words))
    assert set(words) <= {"opens", "door", "box", "man", "reads", "book", "letter"}
    assert words == substitute_vocabulary(QUERIES, own, seed="k", count=10)  # seeded


def test_substitute_vocabulary_follows_the_words_frequency():
    queries = ["person holds a cup"] * 30 + ["person holds a vase"] * 2 + ["person eats"]
    firsts = Counter(substitute_vocabulary(queries, "person eats", seed=str(s), count=1)[0] for s in range(400))
    assert firsts["cup"] > 5 * firsts["vase"]


# ---- hi-vtg's leakage options, against the scripted server ---------------------------------------
VERBS = ["opens", "holds", "closes", "reads"]
NOUNS = ["door", "book", "box"]


def hi_vtg(tmp_path, server, *extra):
    """hi-vtg on 12 queries of 6 videos with some vocabulary to draw substitutes from."""
    source = source_file(tmp_path, 12, query=lambda i: f"a person {VERBS[i % 4]} the {NOUNS[i % 3]}", videos=6)
    return run_hi_vtg(tmp_path, server, *extra, source=source)


def test_hi_vtg_prints_the_leakage_check_of_what_it_built(tmp_path, capsys):
    with ChatServer(hi_vtg_reply) as server:
        assert hi_vtg(tmp_path, server) == 0
    out = capsys.readouterr().out
    # the scripted edits all say "a dog opens a window": the text gives every one away
    assert "text-only leakage: out-of-fold AUC 1.000" in out


def test_substitutes_reach_the_generation_prompt_and_start_a_new_journal(tmp_path, capsys):
    with ChatServer(hi_vtg_reply) as server:
        assert hi_vtg(tmp_path, server) == 0
        plain = len(server.requests)
        assert hi_vtg(tmp_path, server, "--substitutes") == 0
    generation = [r for r in server.requests[plain:] if "plans" in user_text(r)]
    assert len(generation) == 12  # asked again: the journal of the plain run does not answer for it
    for request in generation:
        payload = json.loads(user_text(request))
        assert system_text(request).endswith(GENERATION_SUBSTITUTES)
        assert payload["substitute_vocabulary"] and not set(payload["substitute_vocabulary"]) & set(
            payload["related_query"].split()
        )
    assert all("substitute_vocabulary" not in user_text(r) for r in server.requests[:plain])


def test_debias_drops_leaky_queries_before_writing_and_rejects_them(tmp_path, capsys):
    with ChatServer(hi_vtg_reply) as server:
        assert hi_vtg(tmp_path, server, "--debias", "0.6") == 0
    rejects = [json.loads(line) for line in (tmp_path / "hi.rejects.jsonl").read_text().splitlines()]
    leakage = [r for r in rejects if r["stage"] == "leakage"]
    examples, _ = load_examples(tmp_path / "hi.json")
    irrelevant = [e for e in examples if not e.label.relevant]
    assert leakage and len(irrelevant) + len(leakage) == 36
    assert {
        level: sum(e.label.difficulty == level for e in irrelevant) for level in ("strong", "moderate", "weak")
    } == {
        "strong": 3,
        "moderate": 3,
        "weak": 3,
    }  # the scripted edits leak whatever is dropped: every level stops at its floor, a quarter of 12
    assert "NOT reached" in capsys.readouterr().out
