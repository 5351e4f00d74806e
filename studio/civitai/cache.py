"""A small thread-safe cache whose entries expire: CivitAI's answers change slowly, and the same
question is often asked twice in a row ("What is missing?" then "Download", a page opened twice).

Bounded (least recently used entries go first) so a long-running Studio does not grow without end.
The clock is injectable so tests can move time instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MISSING = object()


class TTLCache:
    def __init__(self, ttl_s: float, *, max_items: int = 2000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self.clock = clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        """The value, or ``MISSING`` when absent or expired."""
        with self._lock:
            found = self._items.get(key)
            if found is None or self.clock() - found[0] >= self.ttl_s:
                if found is not None:
                    del self._items[key]
                self.misses += 1
                return MISSING
            self._items.move_to_end(key)
            self.hits += 1
            return found[1]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = (self.clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
