"""The single-flight LRU cache (`rarft_plugin.cache`)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rarft_plugin.cache import LruCache
from rarft_plugin.clips import VideoError


def test_single_flight_cache_runs_create_once_for_concurrent_callers():
    cache, calls, started = LruCache(4), [], threading.Event()

    def create():
        calls.append(1)
        started.set()
        time.sleep(0.2)  # the other callers arrive while this runs
        return object()

    def caller():
        return cache.get_or_create("clip", create)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(caller)
        started.wait()
        values = [first.result()] + [f.result() for f in [pool.submit(caller) for _ in range(7)]]
    assert len(calls) == 1 and all(v is values[0] for v in values)
    assert (cache.hits, cache.misses) == (7, 1)


def test_single_flight_cache_hands_an_error_to_the_waiters_and_keeps_nothing():
    cache, started = LruCache(4), threading.Event()

    def create():
        started.set()
        time.sleep(0.2)
        raise VideoError("cannot decode video", source="x.mp4")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(cache.get_or_create, "clip", create)
        started.wait()
        others = [pool.submit(cache.get_or_create, "clip", create) for _ in range(3)]
        for future in [first, *others]:
            with pytest.raises(VideoError, match="x.mp4"):
                future.result()
    assert cache.get_or_create("clip", lambda: "decoded now") == "decoded now"  # the failure was not cached


def test_lru_cache_evicts_the_least_recently_used():
    cache = LruCache(2)
    for key in "ab":
        cache.get_or_create(key, lambda key=key: key.upper())
    cache.get_or_create("a", lambda: "fresh a")  # touch a
    cache.get_or_create("c", lambda: "C")  # evicts b
    assert cache.get_or_create("a", lambda: "fresh a") == "A" and cache.get_or_create("b", lambda: "new b") == "new b"


def test_ready_gives_only_a_made_value_without_waiting_or_creating():
    """What the executor's event loop asks (`ready_video_prompt`): never blocks on a value being made."""
    cache, started, release = LruCache(4), threading.Event(), threading.Event()

    def create():
        started.set()
        release.wait(5)
        return "made"

    with ThreadPoolExecutor(1) as pool:
        making = pool.submit(cache.get_or_create, "clip", create)
        started.wait()
        assert cache.ready("clip") is None and cache.ready("other") is None  # being made; never asked
        release.set()
        assert making.result() == "made"
    assert cache.ready("clip") == "made" and "other" not in cache
    assert (cache.hits, cache.misses) == (1, 1)
