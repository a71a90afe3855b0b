"""Logs are one JSON object per line, and a request's lines share its request id."""

from __future__ import annotations

import json
import logging

import pytest

from shop_kernel.log import bind_request_id, clear_request_context, configure_logging, get_logger
from shop_kernel.settings import Settings


def test_lines_are_json_and_carry_the_bound_request_id(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"), process="api")
    try:
        bind_request_id("req-42")
        get_logger("shop.test").info("order placed", order_id="o-1")
        logging.getLogger("some.library").warning("from the standard library")
        clear_request_context()
        get_logger("shop.test").info("after the request")
    finally:
        clear_request_context()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert lines[0]["event"] == "order placed"
    assert lines[0]["order_id"] == "o-1"
    assert lines[0]["request_id"] == "req-42"
    assert lines[0]["level"] == "info"
    assert lines[0]["role"] == "api"
    assert lines[1]["event"] == "from the standard library"
    assert lines[1]["request_id"] == "req-42"
    assert "request_id" not in lines[2]
