"""The Redis clients: broker, rate limits and caches share one server.

Each command is bounded by ``SHOP_REDIS_TIMEOUT`` (connecting, and waiting for the answer),
so that a Redis that hangs fails the command instead of holding a request or a worker thread.
The URL's own ``socket_timeout`` and ``socket_connect_timeout``, when it names them, win.
"""

from __future__ import annotations

from typing import cast

import redis
from dramatiq.brokers.redis import RedisBroker
from redis.asyncio import Redis

from shop_kernel.settings import Settings


def redis_url(settings: Settings) -> str:
    return settings.require("redis_url")


def create_redis(settings: Settings) -> Redis:
    """The process's asyncio client (caches, rate limits, readiness)."""
    return Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        redis_url(settings),
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )


def create_broker_redis(url: str, *, timeout: float) -> redis.Redis:
    """The (synchronous) client Dramatiq's broker works with. No command of the broker
    blocks on the server; an idle consumer waits for a wake-up on a subscription of its
    own, with a bound of its own (shorter than this one), so the bound never cuts it short."""
    return redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def redis_of(broker: RedisBroker) -> redis.Redis:
    """The broker's own (synchronous) Redis client; Dramatiq does not type it."""
    return cast("redis.Redis", broker.client)  # pyright: ignore[reportUnknownMemberType]
