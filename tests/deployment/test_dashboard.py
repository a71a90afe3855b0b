"""The Grafana dashboard (deploy/grafana) charts only metrics the service really exports."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "shop-dashboard.json"
METRIC = re.compile(r"\b((?:litestar|shop|dramatiq)_[a-z_]+)\b")
SUFFIXES = ("_bucket", "_sum", "_count", "_total")  # what the exposition adds to a name


def used(dashboard: dict[str, Any]) -> set[str]:
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in METRIC.findall(expr)}


def missing(names: set[str], exported: set[str]) -> set[str]:
    def base(name: str) -> str:
        for suffix in SUFFIXES:
            name = name.removesuffix(suffix)
        return name

    return {name for name in names if base(name) not in exported and name not in exported}


async def exported(client: AsyncTestClient[Litestar]) -> set[str]:
    """The API's own exposition, the worker's backbone metrics and Dramatiq's per actor."""
    from dramatiq.middleware import prometheus  # noqa: PLC0415

    from shop_kernel.messaging import metrics  # noqa: PLC0415

    await client.get("/products")  # the request metrics exist once a route has answered
    scraped = (await client.get("/metrics")).text
    names = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in scraped.splitlines()
        if line and not line.startswith("#")
    }
    names |= set(re.findall(r'"(shop_[a-z_]+)"', inspect.getsource(metrics)))
    names |= set(re.findall(r'"(dramatiq_[a-z_]+)"', inspect.getsource(prometheus)))
    return names


async def test_every_chart_queries_a_metric_the_service_exports(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = used(dashboard)
    assert {"litestar_requests_total", "shop_outbox_backlog", "dramatiq_messages_total"} <= names
    assert missing(names, await exported(shop_client)) == set()
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


async def test_a_misspelt_metric_is_caught(shop_client: AsyncTestClient[Litestar]) -> None:
    names = {"shop_outbox_backlogg", "litestar_request_duration_seconds_bucket"}
    assert missing(names, await exported(shop_client)) == {"shop_outbox_backlogg"}
