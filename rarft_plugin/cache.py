"""A small thread-safe, single-flight LRU map (decoded clips, processed video prompts).

OpenRLHF starts the G rollouts of a prompt together, so a plain cache would miss G times: here
callers that ask for a key while its value is being made wait for that value instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["LruCache"]

Value = TypeVar("Value")


class LruCache(Generic[Value]):
    """At most `size` values by key, least recently used evicted first, with hit / miss counters.

    `get_or_create(key, create)` runs `create()` once per key: callers that arrive while it runs
    wait for its value (or its error) and count as hits. A failed `create` caches nothing.

    >>> cache = LruCache(2)
    >>> cache.get_or_create("a", lambda: 1), cache.get_or_create("a", lambda: 2), (cache.hits, cache.misses)
    (1, 1, (1, 1))
    """

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[Hashable, Value] = OrderedDict()
        self._pending: dict[Hashable, Future[Value]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_create(self, key: Hashable, create: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            waiting_for = self._pending.get(key)
            if waiting_for is None:
                pending = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if waiting_for is not None:
            return waiting_for.result()
        try:
            value = create()
        except BaseException as error:
            with self._lock:
                del self._pending[key]
            pending.set_exception(error)
            raise
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            del self._pending[key]
        pending.set_result(value)
        return value

    def ready(self, key: Hashable) -> Value | None:
        """The value of `key` if it is made (a hit, now the most recently used), else None: no wait for one being
        made, nothing created. For a caller that must not block (an event loop) and can make it elsewhere.

        >>> cache = LruCache(2)
        >>> cache.ready("a"), cache.get_or_create("a", lambda: 1), cache.ready("a"), (cache.hits, cache.misses)
        (None, 1, 1, (1, 1))
        """
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]

    def reserve(self, size: int) -> None:
        """Hold at least `size` values from now on (never fewer than before): room for what is prepared ahead.

        >>> cache = LruCache(2)
        >>> cache.reserve(5), cache.reserve(3), cache.size
        (None, None, 5)
        """
        with self._lock:
            self._size = max(self._size, size)

    @property
    def size(self) -> int:
        return self._size

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items or key in self._pending

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0
