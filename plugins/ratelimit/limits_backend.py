"""Rate limiting on the ``limits`` library: moving-window counters in memory or Redis.

``memory://`` counts per process (tests, one worker); ``redis://`` shares the counts across
workers and instances. A ``key_prefix`` query parameter (default ``LIMITS``) namespaces the
counters in Redis; other query parameters go to redis-py.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.contracts import RateLimitResult


@lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


def _redis_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split ``key_prefix`` off a Redis URL and add quick-failure defaults: when Redis is down the
    core lets requests through (app/limiting.py), and it should learn that without waiting."""
    from redis.backoff import ExponentialBackoff  # the redis extra; memory:// does without
    from redis.retry import Retry

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {
        "socket_timeout": 1.0,
        "socket_connect_timeout": 1.0,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
    }
    rest = []
    for name, value in query:
        if name == "key_prefix":
            options["key_prefix"] = value
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), options


class LimitsRateLimiter:
    """Moving-window rate limiter; ``limit`` strings use the limits syntax (``10/minute``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {}
        if url.startswith(("redis://", "rediss://", "redis+unix://")):
            url, options = _redis_options(url)
        self.storage = storage_from_string(url, **options)
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
