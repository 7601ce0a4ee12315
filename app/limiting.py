"""``FailOpenLimiter``: what happens to rate limiting when its backend (Redis) is down.

Decision: fail open. Rate limits protect against abuse; they are not what makes a token valid.
Refusing every token request because the limiter's Redis is unreachable would turn a limiter
outage into a full outage of the authorization server, while letting requests through for the
length of the outage only loses throttling (client authentication, PKCE, single-use codes and
rotation are still enforced by storage). Each failure is counted in
``mcp_oauth_rate_limiter_failures_total`` and logged, at most once per ``LOG_EVERY`` seconds per
process so an outage does not flood the log. After a failure the backend is left alone for
``BACKOFF`` seconds (requests pass unthrottled without waiting on it), so an unreachable Redis
costs one timeout per process every few seconds, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time

from app.contracts import RateLimiter, RateLimitResult

log = logging.getLogger("mcp_oauth")

LOG_EVERY = 30.0
BACKOFF = 5.0


class FailOpenLimiter:
    """Wraps a ``RateLimiter``: any exception from it allows the request and is logged."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self._last_log = 0.0
        self._suppressed = 0
        self._skip_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> FailOpenLimiter:
        """The limiter plugin named by the URL's scheme, wrapped."""
        from app import contracts
        from app.state import scheme_of

        inner = contracts.load(contracts.RATE_LIMITERS, scheme_of(url), RateLimiter)
        return cls(inner.from_url(url))

    def _failed(self, op: str, e: Exception) -> RateLimitResult:
        from app import metrics

        metrics.RATE_LIMITER_FAILURES.inc()
        with self._lock:
            now = time.monotonic()
            self._skip_until = now + BACKOFF
            if now - self._last_log < LOG_EVERY:
                self._suppressed += 1
                return RateLimitResult(True)
            suppressed, self._suppressed, self._last_log = self._suppressed, 0, now
        log.warning(
            "rate limiter unavailable (%s in %s); allowing requests unthrottled%s",
            type(e).__name__,
            op,
            f" ({suppressed} more failures since the last message)" if suppressed else "",
        )
        return RateLimitResult(True)

    def _skipping(self) -> bool:
        return time.monotonic() < self._skip_until

    def hit(self, limit: str, *key: str) -> RateLimitResult:
        if self._skipping():
            return RateLimitResult(True)
        try:
            return self.inner.hit(limit, *key)
        except Exception as e:
            return self._failed("hit", e)

    def test(self, limit: str, *key: str) -> RateLimitResult:
        if self._skipping():
            return RateLimitResult(True)
        try:
            return self.inner.test(limit, *key)
        except Exception as e:
            return self._failed("test", e)

    def clear(self, limit: str, *key: str) -> None:
        if self._skipping():
            return
        try:
            self.inner.clear(limit, *key)
        except Exception as e:
            self._failed("clear", e)
