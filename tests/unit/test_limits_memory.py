"""The ``memory://`` rate-limit storage: same counting, no timer thread per expiry pass."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from limits.storage import MemoryStorage, storage_from_string

from plugins.ratelimit import limits_backend
from plugins.ratelimit.limits_backend import InlineExpiryMemoryStorage, LimitsRateLimiter


@pytest.fixture
def limiter() -> LimitsRateLimiter:
    return LimitsRateLimiter("memory://")


def test_memory_url_uses_inline_expiry_storage(limiter: LimitsRateLimiter) -> None:
    assert type(limiter.storage) is InlineExpiryMemoryStorage
    # Not registered as a scheme: limits itself still hands out its own class.
    assert type(storage_from_string("memory://")) is MemoryStorage


def test_limit_is_enforced_per_key(limiter: LimitsRateLimiter) -> None:
    assert [limiter.hit("3/minute", "token", "a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.hit("3/minute", "token", "a")
    assert not refused.allowed and refused.retry_after is not None and 1 <= refused.retry_after <= 61
    assert limiter.hit("3/minute", "token", "b").allowed
    assert not limiter.test("3/minute", "token", "a").allowed


def test_hits_start_no_timer_threads(limiter: LimitsRateLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    real_timer = threading.Timer

    def counting_timer(*args: Any, **kwargs: Any) -> threading.Timer:
        started.append(args)
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(limits_backend.threading, "Timer", counting_timer)
    monkeypatch.setattr("limits.storage.memory.threading.Timer", counting_timer)
    for _ in range(5):
        limiter.hit("100/minute", "token", "c")
        time.sleep(0.02)  # longer than the stock 10 ms timer, which would be restarted each time
    assert started == []


def test_expired_entries_are_dropped_inline(limiter: LimitsRateLimiter) -> None:
    for _ in range(5):
        assert limiter.hit("5/second", "token", "d").allowed
    assert not limiter.hit("5/second", "token", "d").allowed
    old = {key for key in limiter.storage.storage if "/token/d/" in key}
    assert old
    time.sleep(2.2)  # past both windows the sliding counter reads, and past the expiry interval
    assert limiter.hit("5/second", "token", "d").allowed
    # The hit's own thread dropped the counters of windows that can no longer count.
    assert not old & set(limiter.storage.storage)
    assert not old & set(limiter.storage.expirations)
