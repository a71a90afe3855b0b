"""The Redis client: broker, rate limits and caches share one server."""

from __future__ import annotations

from typing import cast

import redis
from dramatiq.brokers.redis import RedisBroker
from redis.asyncio import Redis

from shop_kernel.settings import Settings


def redis_url(settings: Settings) -> str:
    return settings.require("redis_url")


def create_redis(settings: Settings, *, timeout: float = 5.0) -> Redis:
    return Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        redis_url(settings),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def redis_of(broker: RedisBroker) -> redis.Redis:
    """The broker's own (synchronous) Redis client; Dramatiq does not type it."""
    return cast("redis.Redis", broker.client)  # pyright: ignore[reportUnknownMemberType]
