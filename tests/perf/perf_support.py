"""What the benchmarks share: the servers they run against, and percentiles."""

from __future__ import annotations

import os
from pathlib import Path

from shop_kernel.embedded import EmbeddedServices


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def servers(tmp: Path) -> tuple[dict[str, str], EmbeddedServices]:
    """The servers named by SHOP_TEST_*_URL, and embedded ones (under ``tmp``) for the rest."""
    env = os.environ
    embedded = EmbeddedServices(
        tmp,
        postgres="SHOP_TEST_DATABASE_URL" not in env,
        redis="SHOP_TEST_REDIS_URL" not in env,
        mongodb="SHOP_TEST_MONGODB_URL" not in env,
    )
    urls = embedded.start()
    admin = env.get("SHOP_TEST_DATABASE_URL") or urls["postgres"].rsplit("/", 1)[0] + "/postgres"
    return {
        "postgres": admin,
        "redis": env.get("SHOP_TEST_REDIS_URL") or urls["redis"],
        "mongodb": env.get("SHOP_TEST_MONGODB_URL") or urls["mongodb"],
    }, embedded
