"""The orders context's settings (``SHOP_*`` variables, read with the service's at start-up)."""

from __future__ import annotations

from shop_kernel.settings import Duration, SettingsSection


class OrdersSettings(SettingsSection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # An order still pending (its stock never answered) after this long is rejected.
    order_pending_timeout: Duration = 900.0
