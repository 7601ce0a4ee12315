"""Rate limiting on the ``limits`` library: sliding-window counters in memory or Redis.

The sliding-window counter keeps two counters per key and weights the previous window by how
much of it still overlaps, so a hit costs O(1) whatever the limit; the moving window keeps one
timestamp per hit, and its cost grew with the limit (measured in docs/benchmarks.md). It may
let a burst slightly exceed the limit at a window boundary, never more than the limit within
one window.

``memory://`` counts per process (tests, one worker); ``redis://`` shares the counts across
workers and instances. A ``key_prefix`` query parameter (default ``LIMITS``) namespaces the
counters in Redis; other query parameters go to redis-py.
"""

from __future__ import annotations

import inspect
import threading
import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

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


class InlineExpiryMemoryStorage(MemoryStorage):
    """limits' ``memory://`` storage, expiring old entries inline instead of in timer threads.

    The stock storage starts a new ``threading.Timer`` (10 ms) on a hit whenever the previous
    one has finished, so a busy worker starts up to 100 threads a second, and each request that
    starts one waits for the new thread to be scheduled (8% of a token request's time on two
    busy cores, measured with py-spy). Here the same expiry pass runs in the hitting thread at
    most once a second. Counting is unchanged (windows are computed from entry timestamps and
    counter expiry times); only the memory of expired entries is freed up to a second later.
    Not registered as a scheme: ``storage_from_string`` still returns the stock class.
    """

    EXPIRY_INTERVAL = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        self._next_expiry = 0.0
        self._expiry_lock = threading.Lock()
        # Sliding-window keys hit, with the time after which both their counters have expired.
        self._live_until: dict[str, float] = {}
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        # A counter set now expires 2 * expiry from now at the latest (limits sets that TTL).
        self._live_until[key] = time.time() + 2 * expiry
        return _plain_acquire(self, key, limit, expiry, amount)  # type: ignore[no-any-return]

    def may_have_counters(self, key: str) -> bool:
        """False when ``key`` has not been hit for two of its windows: both counters a sliding
        window reads are then gone, so the count is 0 without reading them."""
        return self._live_until.get(key, 0.0) > time.time()

    # Overrides MemoryStorage's private (name-mangled) hook. Should a limits release rename it,
    # nothing breaks: the stock timer threads just keep doing the expiry.
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry or not self._expiry_lock.acquire(blocking=False):
            return
        try:
            self._next_expiry = now + self.EXPIRY_INTERVAL
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
            wall = time.time()
            # list() copies in one step under the GIL: other threads may add keys meanwhile.
            for key, until in list(self._live_until.items()):
                if until <= wall:
                    self._live_until.pop(key, None)
        finally:
            self._expiry_lock.release()


# limits wraps the storage methods of every Storage subclass in an exception-translating layer
# (``Storage.__init_subclass__``), again for each subclass, so this class's methods ran through
# two layers and a sliding-window hit calls several of them (11% of a token request's profile).
# With ``wrap_exceptions=False``, as here, each layer only re-raises what it catches, and memory
# storage raises nothing to translate: the plain methods behave the same.
for _name in (
    "incr",
    "get",
    "get_expiry",
    "check",
    "reset",
    "clear",
    "acquire_entry",
    "get_moving_window",
    "acquire_sliding_window_entry",
    "get_sliding_window",
    "clear_sliding_window",
):
    if _name in InlineExpiryMemoryStorage.__dict__:  # our own override, wrapped the same way
        setattr(InlineExpiryMemoryStorage, _name, inspect.unwrap(InlineExpiryMemoryStorage.__dict__[_name]))
    elif hasattr(MemoryStorage, _name):
        setattr(InlineExpiryMemoryStorage, _name, inspect.unwrap(getattr(MemoryStorage, _name)))
_plain_acquire = inspect.unwrap(MemoryStorage.acquire_sliding_window_entry)


_ALLOWED = RateLimitResult(True)


class LimitsRateLimiter:
    """Sliding-window-counter rate limiter; ``limit`` strings use the limits syntax (``10/minute``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {}
        if url.startswith(("redis://", "rediss://", "redis+unix://")):
            url, options = _redis_options(url)
        self._memory: InlineExpiryMemoryStorage | None = None
        if urlsplit(url).scheme == "memory":
            self.storage = self._memory = InlineExpiryMemoryStorage(url)
        else:
            self.storage = storage_from_string(url, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

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
        # Most keys tested are never hit (addresses without failed authentications, tested
        # before every token request): in memory that is known without reading two counters.
        if self._memory is not None and not self._memory.may_have_counters(item.key_for(*key)):
            return _ALLOWED
        if self.strategy.test(item, *key):
            return RateLimitResult(True)
        return RateLimitResult(False, self._retry_after(item, key))

    def clear(self, limit: str, *key: str) -> None:
        self.strategy.clear(_item(limit), *key)

    def _retry_after(self, item: RateLimitItem, key: tuple[str, ...]) -> int:
        stats = self.strategy.get_window_stats(item, *key)
        return max(1, int(stats.reset_time - time.time()) + 1)
