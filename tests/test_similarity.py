import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rarft_plugin import similarity as similarity_module
from rarft_plugin.similarity import SentenceSimilarity, default_model_path, normalize_text, resolve_model


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


def test_whitespace_and_length_normalisation():
    assert normalize_text("  a \n\t b ") == "a b"
    assert len(normalize_text("x" * 100_000)) == similarity_module.MAX_TEXT_CHARS


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
