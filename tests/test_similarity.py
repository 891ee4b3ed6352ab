import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_plugin import similarity as similarity_module
from rarft_plugin.similarity import SentenceSimilarity, capped_text, default_model_path, resolve_model


@pytest.fixture(scope="module")
def fresh():
    """A private instance so cache / call counters start from zero."""
    return SentenceSimilarity()


@pytest.mark.parametrize(
    "argument, env, expected",
    [
        (None, None, "default"),
        ("sentence-transformers/all-mpnet-base-v2", None, "sentence-transformers/all-mpnet-base-v2"),
        (None, "my-org/my-sbert", "my-org/my-sbert"),
        ("explicit-name", "env-name", "explicit-name"),  # the argument wins over the environment
    ],
)
def test_resolve_model(monkeypatch, argument, env, expected):
    if env is None:
        monkeypatch.delenv("RARFT_SBERT_MODEL", raising=False)
    else:
        monkeypatch.setenv("RARFT_SBERT_MODEL", env)
    expected = str(Path(default_model_path()).resolve()) if expected == "default" else expected
    assert resolve_model(argument) == expected


def test_missing_local_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="SentenceBERT model directory not found"):
        resolve_model(str(tmp_path / "nope"))


def test_unloadable_model_names_the_variable(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="RARFT_SBERT_MODEL"):
        SentenceSimilarity(str(tmp_path / "empty"))


def test_embeddings_are_unit_norm_and_cached(fresh):
    before = fresh.encoded_texts
    vectors = fresh.encode(["a man runs", "a woman cooks", "a man runs"])
    assert vectors.shape[0] == 3 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert fresh.encoded_texts - before == 2  # duplicates encoded once
    fresh.encode(["a woman cooks", "a man runs"])
    assert fresh.encoded_texts - before == 2  # all cached now
    assert np.array_equal(fresh.encode(["a man runs"])[0], vectors[0])


def test_cosines(fresh):
    same, related, unrelated = fresh.cosine_pairs(
        [
            ("a man runs", "a man runs"),
            ("a man cooks pasta", "a chef prepares noodles"),
            ("a man cooks pasta", "the stock market fell"),
        ]
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert related > unrelated
    assert fresh.cosine_pairs([]) == []


def words(text):
    return len(text.split())


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("one two three four", 100, "one two three four"),  # short texts are encoded as given
        ("  a \n\t b ", 100, "  a \n\t b "),  # whitespace kept (the tokenizer decides what it means)
        ("one two three four five", 8, "one two three"),  # the first split point after the limit: 3 tokens
        ("one two three four five", 4, "one two three four five"),  # "one two" is short; 16 covers it all
        ("one\ttwo\nthree four", 8, "one\ttwo\nthree"),
        ("one     two", 2, "one     two"),  # prefixes of 4x the limit hold too few tokens: whole text
        ("x" * 50, 4, "x" * 50),  # no split point: whole text
        ("a\x1cb c\x1cd e f", 5, "a\x1cb c\x1cd"),  # \x1c (at 5) is no split point: BERT deletes it
    ],
)
def test_capped_text(text, limit, expected):
    assert capped_text(text, words, max_tokens=3, limit=limit) == expected


@pytest.fixture(scope="module")
def tokenizer(fresh):
    return fresh._model.tokenizer


TEXT_PIECES = st.lists(
    st.sampled_from(
        [
            "a",
            "man",
            "sits",
            "unaffable",
            ".",
            ",",
            "<answer>",
            "</think>",
            " ",
            "  ",
            "\t",
            "\n",
            "\r",
            "\x1c",
            "\xa0",
            "\u0301",
            "\u200b",
            "é",
            "中",
            "12.5",
            "to",
            "\u2028",
            "X" * 120,
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXT_PIECES, st.integers(1, 40), st.integers(1, 12))
def test_the_cap_never_changes_what_the_encoder_reads(tokenizer, text, limit, max_tokens):
    """The encoder reads the first max_seq_length tokens: with the model's own tokenizer, the capped text and
    the whole text give it the same ids (here with small limits, so that the cap cuts)."""

    def count(piece):
        return len(tokenizer(piece, add_special_tokens=False)["input_ids"])

    capped = capped_text(text, count, max_tokens, limit)
    assert text.startswith(capped)
    truncated = [tokenizer(t.strip(), truncation=True, max_length=max_tokens + 2)["input_ids"] for t in (capped, text)]
    assert truncated[0] == truncated[1]


def test_long_realistic_texts_encode_exactly_as_given(fresh, official_data):
    """The reference refusals of a released file joined into 200,000 characters: the cap keeps 8,192 and the
    embedding is bit for bit the one of the whole text."""
    import json

    refusals = [
        entry["a"]
        for item in json.loads((official_data / "hi_vtg_charades.json").read_text())
        for entry in item["GRPO"]
    ]
    text = " ".join(refusals)[:200_000]
    capped = fresh.encoder_text(text)
    assert len(capped) < 8_300 < len(text)
    whole = fresh._model.encode([text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    assert np.array_equal(fresh.encode([text])[0], whole[0])


def test_texts_are_encoded_as_given(fresh):
    """No normalisation before the encoder: the released code encodes the raw text (a cached key is the text)."""
    assert fresh.encoder_text("  a \n\t b ") == "  a \n\t b "
    assert fresh.encoder_text("x" * 100_000) == "x" * 100_000  # no split point: encoded whole
    assert len(fresh.encoder_text("word " * 100_000)) <= similarity_module.MAX_TEXT_CHARS + 5


def test_concurrent_calls_are_coalesced_and_correct(fresh):
    texts = [f"rollout answer number {i} about a person opening a door" for i in range(16)]
    expected = fresh.cosine_pairs([("reference", t) for t in texts])  # sequential reference values
    fresh._cache.clear()
    original = fresh._model.encode
    first = threading.Event()

    def slow_first_encode(*args, **kwargs):
        if not first.is_set():
            first.set()
            time.sleep(0.5)  # hold the encoder so every other caller queues behind it
        return original(*args, **kwargs)

    fresh._model.encode = slow_first_encode
    calls_before = fresh.encode_calls
    results = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def worker(i):
        barrier.wait()
        if i:
            first.wait()
        results[i] = fresh.cosine_pairs([("reference", texts[i])])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(texts))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        fresh._model.encode = original
    assert results == pytest.approx(expected, abs=1e-5)
    assert fresh.encode_calls - calls_before == 2  # the first caller alone, then everyone else together


def test_encoder_failure_reaches_every_waiting_caller(fresh):
    original = fresh._model.encode

    def broken(*args, **kwargs):
        raise RuntimeError("device lost")

    fresh._model.encode = broken
    try:
        with pytest.raises(RuntimeError, match="device lost"):
            fresh.encode(["never seen before text 123"])
    finally:
        fresh._model.encode = original
    assert fresh.encode(["never seen before text 123"]).shape[0] == 1  # the encoder recovers
