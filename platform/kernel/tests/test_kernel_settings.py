"""Settings come from SHOP_* variables; a bad one stops start-up with one line naming it."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from shop_kernel.settings import Duration, Settings, SettingsError, SettingsSection


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.data_dir == ".shop"
    assert settings.log_format == "json"
    assert settings.request_max_body_size == 1024 * 1024


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env(
        {
            "SHOP_DATABASE_URL": "postgresql://u@db:5432/shop",
            "SHOP_DB_POOL_SIZE": "25",
            "SHOP_HEALTH_TIMEOUT": "0.5",
            "SHOP_LOG_LEVEL": "DEBUG",
            "SHOP_DATA_DIR": "/var/lib/shop",
            "PATH": "/usr/bin",  # not ours: ignored
        }
    )
    assert settings.database_url == "postgresql://u@db:5432/shop"
    assert settings.db_pool_size == 25
    assert settings.health_timeout == 0.5
    assert settings.log_level == "DEBUG"
    assert str(settings.data_path) == "/var/lib/shop"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SHOP_DB_POOL_SIZE": "many"}, "SHOP_DB_POOL_SIZE: expected `int`, got 'many'"),
        ({"SHOP_DB_POOL_SIZE": "0"}, "SHOP_DB_POOL_SIZE: expected `int` >= 1, got '0'"),
        ({"SHOP_LOG_LEVEL": "LOUD"}, "SHOP_LOG_LEVEL: must be one of DEBUG, ERROR, INFO, WARNING"),
        ({"SHOP_DATABASE_URL": "mysql://x/y"}, "SHOP_DATABASE_URL: must start with one of"),
        ({"SHOP_REDIS_URL": "localhost:6379"}, "SHOP_REDIS_URL: must start with one of"),
        ({"SHOP_MONGODB_URL": "http://x"}, "SHOP_MONGODB_URL: must start with one of"),
        ({"SHOP_HEALTH_TIMEOUT": ""}, "SHOP_HEALTH_TIMEOUT: is set but empty"),
        ({"SHOP_MONGODB_DATABASE": "a/b"}, "SHOP_MONGODB_DATABASE:"),
        ({"SHOP_DATABSE_URL": "postgresql://x"}, "did you mean SHOP_DATABASE_URL?"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    message = str(refused.value)
    assert expected in message
    assert "\n" not in message


def test_test_harness_variables_are_not_settings() -> None:
    settings = Settings.from_env({"SHOP_TEST_DATABASE_URL": "postgresql://x/y"})
    assert settings.database_url is None


class ShelfSettings(SettingsSection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A context's own section, as a context declares it in its module."""

    secret_fields = frozenset({"shelf_key"})

    shelf_key: Annotated[str, msgspec.Meta(min_length=32)] | None = None
    shelf_restock_after: Duration = 60.0
    shelf_height: int = 3


def test_a_refused_secret_or_url_password_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as short_secret:
        Settings.from_env({"SHOP_SHELF_KEY": "hunter2"}, sections=[ShelfSettings])
    with pytest.raises(SettingsError) as bad_url:
        Settings.from_env({"SHOP_DATABASE_URL": "mysql://shop:hunter2@db/shop"})
    assert "SHOP_SHELF_KEY" in str(short_secret.value)
    assert "hunter2" not in str(short_secret.value)
    assert "hunter2" not in str(bad_url.value)
    assert "mysql://shop:***@db/shop" in str(bad_url.value)


def test_a_context_s_section_is_read_from_the_same_environment_and_known_only_with_it() -> None:
    environ = {"SHOP_SHELF_HEIGHT": "7", "SHOP_DB_POOL_SIZE": "4"}
    with pytest.raises(SettingsError, match=r"\ASHOP_SHELF_HEIGHT: unknown setting"):
        Settings.from_env(environ)  # no context declares it
    settings = Settings.from_env(environ, sections=[ShelfSettings])
    assert settings.db_pool_size == 4
    assert settings.section(ShelfSettings).shelf_height == 7
    with pytest.raises(SettingsError, match=r"\ASHOP_SHELF_HEIGHT: expected `int`"):
        Settings.from_env({"SHOP_SHELF_HEIGHT": "tall"}, sections=[ShelfSettings])


def test_a_section_not_read_has_its_defaults_and_overrides_reach_sections() -> None:
    assert Settings().section(ShelfSettings) == ShelfSettings()
    settings = Settings.from_env({}, sections=[ShelfSettings])
    changed = settings.with_overrides(shelf_height=9, db_pool_size=2)
    assert (changed.section(ShelfSettings).shelf_height, changed.db_pool_size) == (9, 2)
    assert settings.section(ShelfSettings).shelf_height == 3  # the original is untouched
    with pytest.raises(TypeError, match="shelf_height"):
        Settings().with_overrides(shelf_height=9)  # a section these settings do not have


def test_the_bootstrap_admin_needs_both_email_and_password() -> None:
    with pytest.raises(SettingsError, match="set both or neither"):
        Settings.from_env({"SHOP_BOOTSTRAP_ADMIN_EMAIL": "root@example.com"})
    both = Settings.from_env(
        {
            "SHOP_BOOTSTRAP_ADMIN_EMAIL": "root@example.com",
            "SHOP_BOOTSTRAP_ADMIN_PASSWORD": "correct horse battery",
        }
    )
    assert both.bootstrap_admin_email == "root@example.com"


def test_the_bootstrap_password_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {"SHOP_BOOTSTRAP_ADMIN_EMAIL": "a@b.co", "SHOP_BOOTSTRAP_ADMIN_PASSWORD": "x" * 600}
        )
    assert "x" * 20 not in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86_400.0), ("1.5d", 129_600.0),
     ("250ms", 0.25)],
)  # fmt: skip
def test_durations_are_read_with_their_unit(raw: str, seconds: float) -> None:
    assert Settings.from_env({"SHOP_PURGE_INTERVAL": raw}).purge_interval == seconds
    read = Settings.from_env({"SHOP_SHELF_RESTOCK_AFTER": raw}, sections=[ShelfSettings])
    assert read.section(ShelfSettings).shelf_restock_after == seconds


@pytest.mark.parametrize("raw", ["soon", "15 minutes", "-5m", "0", "400d"])
def test_a_bad_duration_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"\ASHOP_EVENT_OUTAGE_MAX_AGE: "):
        Settings.from_env({"SHOP_EVENT_OUTAGE_MAX_AGE": raw})


def test_the_inbox_must_outlive_the_dead_letters() -> None:
    with pytest.raises(SettingsError, match="SHOP_INBOX_RETENTION: must be longer than the 30"):
        Settings.from_env({"SHOP_INBOX_RETENTION": "30d"})
    assert Settings.from_env({"SHOP_INBOX_RETENTION": "31d"}).inbox_retention == 31 * 86_400
