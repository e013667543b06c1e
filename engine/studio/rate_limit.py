"""A token bucket per key (one per webhook), in this process's memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Each key may take ``rate`` requests per minute, up to ``rate`` at once after a quiet
    spell (the bucket holds a minute's worth). Keys are the ids of known hooks only, so the
    table stays as small as the hook store; :meth:`forget` drops one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float, int]] = {}  # tokens, at, rate
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_minute: int) -> float:
        """Take one request for ``key``: 0 if allowed, else the seconds until the next one
        is (what ``Retry-After`` says)."""
        now = self._clock()
        per_second = rate_per_minute / 60.0
        with self._lock:
            tokens, at, rate = self._buckets.get(key, (float(rate_per_minute), now, 0))
            if rate != rate_per_minute:  # a new hook, or its rate changed
                tokens = min(tokens, float(rate_per_minute))
            tokens = min(float(rate_per_minute), tokens + (now - at) * per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now, rate_per_minute)
                return 0.0
            self._buckets[key] = (tokens, now, rate_per_minute)
            return (1.0 - tokens) / per_second

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)
