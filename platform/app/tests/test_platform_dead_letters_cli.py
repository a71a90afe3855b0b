"""`shop events dead-letters list|replay`: an operator sees why and sends it again."""

from __future__ import annotations

import time
import uuid

import dramatiq
import pytest
from click.testing import CliRunner
from redis import Redis

from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.messaging.dead_letters import REASONS_KEY
from shop_kernel.settings import Settings
from shop_platform.cli import shop


def bury(redis_url: str, queue: str, event_type: str, reason: str) -> str:
    """Put a message where Dramatiq's nack puts one that exhausted its retries."""
    redis_id = str(uuid.uuid4())
    message = dramatiq.Message[None](
        queue_name=queue,
        actor_name=f"{queue}.ReserveStock",
        args=('{"type": "%s"}' % event_type,),  # noqa: UP031 - JSON braces
        kwargs={},
        options={"event_type": event_type, "retries": 8, "redis_message_id": redis_id},
    )
    client = Redis.from_url(redis_url)
    try:
        client.zadd(f"{NAMESPACE}:{queue}.XQ", {redis_id: time.time() * 1000})
        client.hset(f"{NAMESPACE}:{queue}.XQ.msgs", redis_id, message.encode())
        client.hset(f"{NAMESPACE}:{REASONS_KEY}", redis_id, reason)
    finally:
        client.close()
    return redis_id


@pytest.fixture
def run(shop_settings: Settings) -> CliRunner:
    return CliRunner(
        env={
            "SHOP_REDIS_URL": shop_settings.redis_url,
            "SHOP_DATABASE_URL": shop_settings.database_url,
            "SHOP_LOG_LEVEL": "WARNING",
        }
    )


def test_listing_names_event_subscriber_attempts_and_error(
    run: CliRunner, shop_settings: Settings
) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    redis_id = bury(
        shop_settings.redis_url or "",
        queue,
        "orders.OrderPlaced.v1",
        "RuntimeError: no stock table",
    )
    result = run.invoke(shop, ["events", "dead-letters", "list"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if redis_id in line)
    assert "orders.OrderPlaced.v1" in row
    assert f"{queue}.ReserveStock" in row
    assert " 9 " in row
    assert "RuntimeError: no stock table" in row


def test_replaying_one_moves_it_back_to_its_queue(run: CliRunner, shop_settings: Settings) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    url = shop_settings.redis_url or ""
    first = bury(url, queue, "orders.OrderPlaced.v1", "boom")
    second = bury(url, queue, "orders.OrderPlaced.v1", "boom")
    result = run.invoke(shop, ["events", "dead-letters", "replay", first])
    assert result.exit_code == 0, result.output
    client = Redis.from_url(url)
    try:
        assert client.zrange(f"{NAMESPACE}:{queue}.XQ", 0, -1) == [second.encode()]
        waiting = [
            dramatiq.Message.decode(body) for body in client.hvals(f"{NAMESPACE}:{queue}.msgs")
        ]
    finally:
        client.close()
    assert len(waiting) == 1
    assert waiting[0].actor_name == f"{queue}.ReserveStock"
    assert "retries" not in waiting[0].options


def test_replay_all_empties_the_dead_letters(run: CliRunner, shop_settings: Settings) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        bury(shop_settings.redis_url or "", queue, "users.UserRegistered.v1", "boom")
    result = run.invoke(shop, ["events", "dead-letters", "replay", "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.count("replayed") >= 3
    listed = run.invoke(shop, ["events", "dead-letters", "list"])
    assert "0 dead letter(s)" in listed.output


def test_replay_needs_an_id_or_all_and_refuses_an_unknown_id(run: CliRunner) -> None:
    assert run.invoke(shop, ["events", "dead-letters", "replay"]).exit_code == 2
    unknown = run.invoke(shop, ["events", "dead-letters", "replay", "nope"])
    assert unknown.exit_code == 1
    assert "no dead letter with id nope" in unknown.output
