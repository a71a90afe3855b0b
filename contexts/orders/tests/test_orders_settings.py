"""The orders' own settings: read with the service's, as durations."""

from __future__ import annotations

import pytest

from shop_kernel.settings import Settings, SettingsError
from shop_orders.adapters.deadlines import check_every
from shop_orders.settings import OrdersSettings


def test_the_pending_timeout_is_a_duration_and_paces_its_check() -> None:
    settings = Settings.from_env({"SHOP_ORDER_PENDING_TIMEOUT": "2m"}, sections=[OrdersSettings])
    assert settings.section(OrdersSettings).order_pending_timeout == 120.0
    assert check_every(settings) == 30.0
    short = settings.with_overrides(order_pending_timeout=8.0)
    assert check_every(short) == 2.0


def test_a_bad_pending_timeout_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"\ASHOP_ORDER_PENDING_TIMEOUT: a duration"):
        Settings.from_env({"SHOP_ORDER_PENDING_TIMEOUT": "soon"}, sections=[OrdersSettings])
