"""The bounded contexts this service is made of: every one installed beside the platform.

A context declares itself with an entry point in the ``shop.contexts`` group naming its
:class:`ContextModule`. The platform depends on no context: the deployable (the workspace's
root project) installs all four, and a context installed alone with its declared
dependencies composes an app of just those, which is how each context's tests run in
isolation.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from shop_kernel.messaging.tables import MIGRATIONS as MESSAGING_MIGRATIONS
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings, SettingsSection

ENTRY_POINT_GROUP = "shop.contexts"


def installed_contexts() -> tuple[ContextModule, ...]:
    """Every installed context, in a fixed order (by name), each once."""
    found: dict[str, ContextModule] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        module = entry_point.load()
        if not isinstance(module, ContextModule):
            raise TypeError(
                f"entry point {entry_point.name!r} ({entry_point.value}) is not a ContextModule"
            )
        if module.name != entry_point.name:
            raise ValueError(
                f"entry point {entry_point.name!r} names a context called {module.name!r}"
            )
        found[module.name] = module
    return tuple(found[name] for name in sorted(found))


CONTEXTS: tuple[ContextModule, ...] = installed_contexts()


def migration_targets() -> list[MigrationTarget]:
    """The kernel's own schema first, then every context's."""
    return [MESSAGING_MIGRATIONS, *(context.migrations for context in CONTEXTS)]


def settings_sections() -> list[type[SettingsSection]]:
    """The settings sections of the installed contexts."""
    return [context.settings for context in CONTEXTS if context.settings is not None]


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The service's settings and every installed context's, from ``environ`` (default
    ``os.environ``): refused on the first bad one, or on a ``SHOP_*`` variable none knows."""
    return Settings.from_env(environ, sections=settings_sections())


def known_settings() -> set[str]:
    """Every ``SHOP_*`` variable the service reads (its own and its contexts')."""
    return Settings.env_names().union(*(kind.env_names() for kind in settings_sections()))
