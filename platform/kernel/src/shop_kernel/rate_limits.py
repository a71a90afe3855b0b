"""Rate limits that every API process shares: each attempt is one atomic step in Redis.

A ``RateLimiter`` allows ``limit`` attempts per key in any moving window of its length, e.g.
``"5/minute"`` or ``(5, 60)`` (count, seconds). The key is the limiter's ``name`` plus the
parts given to ``hit``, so one limiter can count per client address, another per email::

    per_address = RateLimiter(redis, "5/minute", name="password-reset:address")
    per_email = RateLimiter(redis, "3/hour", name="password-reset:email")

    for decision in (await per_address.hit(address), await per_email.hit(email.lower())):
        if not decision.allowed:
            raise too_many_requests(decision)  # 429 problem+json with Retry-After

``redis`` is the process's ``redis.asyncio.Redis`` client (the container's), or a callable
returning it when the client only opens in the app's lifespan. The counting is the moving
window of the ``limits`` library: one Lua script checks the window and records the attempt,
so processes racing each other never let more than ``limit`` through. Its timestamps come
from the calling process's clock, so replicas rely on synchronised clocks (NTP): a skew of
``d`` seconds can only let an attempt through ``d`` seconds early.

A Redis outage is not an open door: ``hit`` raises the client's ``ConnectionError`` or
``TimeoutError``, which the API answers with 503 (``shop_platform.http.problems``).
Key parts are hashed before they reach Redis (no address or email is readable there), and
a key expires with its window.

A refusal is answered with the ``RateLimit-*`` headers of the IETF draft and ``Retry-After``
(:func:`too_many_requests`). The platform puts a limiter per client address in front of the
routes the contexts declare limited (``shop_platform.http.rate_limits``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis

KEY_PREFIX: Final = "shop:ratelimit"

# "5/minute" (the limits library's notation) or (count, seconds).
Limit = str | tuple[int, int]
RedisSource = Redis | Callable[[], Redis]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """What one attempt was told. ``retry_after`` is the seconds until the oldest attempt
    counted leaves the window, so that a slot frees (what ``Retry-After`` says on a
    refusal); ``remaining`` is how many more the window takes now."""

    allowed: bool
    retry_after: int
    limit: int
    remaining: int
    window_s: int

    def headers(self) -> dict[str, str]:
        """The IETF draft's ``RateLimit-*`` headers, and ``Retry-After`` on a refusal."""
        headers = {
            "RateLimit-Policy": f"{self.limit}; w={self.window_s}",
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.retry_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """At most ``limit`` attempts per key in any moving window, across every process."""

    def __init__(self, redis: RedisSource, limit: Limit, *, name: str) -> None:
        if not name:
            raise ValueError("a rate limiter needs a name: it keeps its counts apart")
        self._redis = redis
        self.item = _item(limit, name)
        self._strategy: tuple[Redis, MovingWindowRateLimiter] | None = None

    def __repr__(self) -> str:
        return f"RateLimiter({self.item.namespace!r}, {self.item})"

    @property
    def limit(self) -> int:
        return self.item.amount

    @property
    def window_s(self) -> int:
        return self.item.get_expiry()

    async def hit(self, *key_parts: str) -> RateDecision:
        """Count an attempt for ``key_parts`` if the window has room; say whether it had."""
        strategy, key = self._strategy_now(), _digest(key_parts)
        allowed = await strategy.hit(self.item, key)
        reset_at, remaining = await strategy.get_window_stats(self.item, key)
        retry_after = min(max(1, math.ceil(reset_at - time.time())), self.window_s)
        return RateDecision(allowed, retry_after, self.limit, max(0, remaining), self.window_s)

    def _strategy_now(self) -> MovingWindowRateLimiter:
        """The limits library's moving window over this client's connection pool (made
        again only if the client is replaced, as when an app's lifespan runs again)."""
        client = self._redis if isinstance(self._redis, Redis) else self._redis()
        if self._strategy is None or self._strategy[0] is not client:
            # With a pool of its own the storage ignores the URI's location (limits' docs).
            pool: dict[str, Any] = {"connection_pool": client.connection_pool}
            storage = RedisStorage(
                "async+redis://", implementation="redispy", key_prefix=KEY_PREFIX, **pool
            )
            self._strategy = (client, MovingWindowRateLimiter(storage))
        return self._strategy[1]


def too_many_requests(
    decision: RateDecision, *, what: str = "this address"
) -> TooManyRequestsException:
    """The 429 for a refused ``decision``: problem+json with ``Retry-After``."""
    return TooManyRequestsException(
        detail=f"Too many requests from {what}; retry in {decision.retry_after} s",
        headers=decision.headers(),
    )


def _item(limit: Limit, name: str) -> RateLimitItem:
    if isinstance(limit, str):
        parsed = parse(limit)
        count, seconds = parsed.amount, parsed.get_expiry()
        item = type(parsed)(parsed.amount, parsed.multiples, namespace=name)
    else:
        count, seconds = limit
        item = RateLimitItemPerSecond(count, seconds, namespace=name)
    if count < 1 or seconds < 1:
        raise ValueError(f"a rate limit is at least 1 attempt in at least 1 s, not {limit}")
    return item


def _digest(key_parts: tuple[str, ...]) -> str:
    joined = "\x00".join(key_parts).encode()
    return hashlib.blake2b(joined, digest_size=16, person=b"shop-ratelimit").hexdigest()
