"""Rate limiting on the ``limits`` library: moving-window counters in memory or Redis.

``memory://`` counts per process (tests, one worker); ``redis://`` shares the counts across
workers and instances.
"""

from __future__ import annotations

import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.contracts import RateLimitResult


@lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


class LimitsRateLimiter:
    """Moving-window rate limiter; ``limit`` strings use the limits syntax (``10/minute``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.storage = storage_from_string(url)
        self.strategy = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_url(cls, url: str) -> LimitsRateLimiter:
        return cls(url)

    def hit(self, limit: str, *key: str) -> RateLimitResult:
        item = _item(limit)
        if self.strategy.hit(item, *key):
            return RateLimitResult(True)
        return RateLimitResult(False, self._retry_after(item, key))

    def test(self, limit: str, *key: str) -> RateLimitResult:
        item = _item(limit)
        if self.strategy.test(item, *key):
            return RateLimitResult(True)
        return RateLimitResult(False, self._retry_after(item, key))

    def clear(self, limit: str, *key: str) -> None:
        self.strategy.clear(_item(limit), *key)

    def _retry_after(self, item: RateLimitItem, key: tuple[str, ...]) -> int:
        stats = self.strategy.get_window_stats(item, *key)
        return max(1, int(stats.reset_time - time.time()) + 1)
