"""The `shop` command line: run the service, its worker and its migrations."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click
from dramatiq.brokers.redis import RedisBroker

from shop_kernel.log import configure_logging
from shop_kernel.settings import Settings, SettingsError
from shop_kernel.views import ReadView
from shop_platform.backbone import SUBSCRIBERS, Backbone, Subscribers
from shop_platform.contexts import CONTEXTS, settings_from_env
from shop_platform.memory import keep_few_malloc_arenas

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

P = ParamSpec("P")
R = TypeVar("R")

# On SIGTERM the API stops accepting and lets requests in flight finish for up to this long;
# the worker lets the messages in hand finish for up to this long and requeues the rest.
# Deployments give the processes more than this before they kill (deploy/k8s, compose.yaml).
API_DRAIN_S = 20
WORKER_DRAIN_S = 20


def _settings(process: str) -> Settings:
    settings = settings_from_env()
    configure_logging(settings, process=process)
    return settings


def _config_errors_in_one_line(command: Callable[P, R]) -> Callable[P, R]:
    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SettingsError as exc:
            click.echo(f"shop: configuration error: {exc}", err=True)
            sys.exit(2)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def shop() -> None:
    """Shop back end: HTTP API, background worker and operator commands."""


@shop.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@_config_errors_in_one_line
def dev(host: str, port: int) -> None:
    """Run everything locally: embedded stores for unset URLs, migrations, worker and API."""
    try:
        # Here only: the embedded servers come with the development kit, which the production
        # image does not install (and `shop api` starts lighter without them).
        from shop_platform.dev import run_dev  # noqa: PLC0415
    except ModuleNotFoundError as missing:
        if missing.name != "shop_devkit" and not (missing.name or "").startswith("shop_devkit."):
            raise
        raise click.ClickException(
            "shop dev needs the development kit (shop-devkit), which is not installed here: "
            "run it from a checkout with `uv run shop dev`; in production run `shop api` and "
            "`shop worker` against configured stores"
        ) from None

    sys.exit(run_dev(_settings("dev"), host=host, port=port))


@shop.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@_config_errors_in_one_line
def api(host: str, port: int) -> None:
    """Serve the HTTP API (configured stores; run `shop db upgrade` first)."""
    import uvicorn  # noqa: PLC0415

    from shop_platform.app import create_app  # noqa: PLC0415
    from shop_platform.http.server import DrainingServer  # noqa: PLC0415

    settings = _settings("api")
    keep_few_malloc_arenas()  # before the server's threads start
    trusted_proxies = settings.trusted_proxies.strip()
    app = create_app(settings, configure_logs=False)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        server_header=False,
        log_config=None,
        timeout_graceful_shutdown=API_DRAIN_S,
    )
    DrainingServer(config).run()


@shop.command()
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", type=click.IntRange(1, 256), help="Default: SHOP_WORKER_THREADS.")
@click.option(
    "--serve",
    type=click.Choice(SUBSCRIBERS),
    default="all",
    show_default=True,
    help="Which subscribers' queues: the handlers (the saga, the mails), the projections "
    "(the read views), or all. Run one program of each to keep a slow read store from "
    "holding the threads the saga needs.",
)
@_config_errors_in_one_line
def worker(processes: int, threads: int | None, serve: Subscribers) -> None:
    """Run the background worker (Dramatiq over Redis)."""
    from shop_platform.worker import metrics_environment  # noqa: PLC0415

    settings = settings_from_env()  # refuse bad settings here, in one line, before forking
    queues = [] if serve == "all" else ["--queues", *Backbone.of(CONTEXTS).queues_serving(serve)]
    # A fresh folder per worker program: never shared with another worker, never reused.
    metrics_dir = Path(tempfile.mkdtemp(prefix="shop-worker-metrics-"))
    os.environ.update(metrics_environment(metrics_dir))
    os.environ["dramatiq_worker_timeout"] = str(settings.worker_idle_poll_ms)  # noqa: SIM112 - the name Dramatiq reads
    argv = [
        sys.executable, "-m", "dramatiq", "shop_platform.worker:setup",
        "--processes", str(processes),
        "--threads", str(threads or settings.worker_threads),
        "--worker-shutdown-timeout", str(WORKER_DRAIN_S * 1000),
        *queues,
    ]  # fmt: skip
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with Dramatiq's CLI


@shop.group()
def db() -> None:
    """Schema migrations of the write store (one Alembic environment per schema)."""


@db.command()
@_config_errors_in_one_line
def upgrade() -> None:
    """Migrate the kernel's schema, then every context's, to their latest revision."""
    from shop_kernel.migrations import upgrade as upgrade_all  # noqa: PLC0415
    from shop_kernel.sql import database_url  # noqa: PLC0415
    from shop_platform.contexts import migration_targets  # noqa: PLC0415

    settings = _settings("migrate")
    for schema, revision in upgrade_all(database_url(settings), migration_targets()):
        click.echo(f"{schema}: {revision}")


@db.command()
@_config_errors_in_one_line
def check() -> None:
    """Fail if any schema's tables differ from what its migrations create."""
    from shop_kernel.migrations import check as check_one  # noqa: PLC0415
    from shop_kernel.sql import database_url  # noqa: PLC0415
    from shop_platform.contexts import migration_targets  # noqa: PLC0415

    settings = _settings("migrate")
    for target in migration_targets():
        check_one(database_url(settings), target)
        click.echo(f"{target.schema}: no drift")


@db.command()
@click.argument("schema")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True, show_default=True)
@_config_errors_in_one_line
def revision(schema: str, message: str, autogenerate: bool) -> None:
    """Write a new migration for SCHEMA (messaging, users, catalog, orders, notifications)."""
    from shop_kernel.migrations import revision as new_revision  # noqa: PLC0415
    from shop_kernel.sql import database_url  # noqa: PLC0415
    from shop_platform.contexts import migration_targets  # noqa: PLC0415

    targets = {target.schema: target for target in migration_targets()}
    if schema not in targets:
        raise click.BadParameter(f"one of {', '.join(targets)}", param_hint="SCHEMA")
    settings = _settings("migrate")
    new_revision(database_url(settings), targets[schema], message, autogenerate=autogenerate)


@shop.group()
def events() -> None:
    """The event backbone: what could not be delivered."""


@events.group("dead-letters")
def dead_letters_group() -> None:
    """Messages whose subscriber kept failing; nothing is dropped silently."""


@dead_letters_group.command("list")
@_config_errors_in_one_line
def list_dead_letters() -> None:
    """Show every dead letter: event type, subscriber, error and attempts."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from shop_kernel.messaging.dead_letters import dead_letters  # noqa: PLC0415

    letters = dead_letters(_broker())
    table = Table("id", "event type", "subscriber", "attempts", "failed at", "error")
    for letter in letters:
        table.add_row(
            letter.id,
            letter.event_type,
            letter.subscriber,
            str(letter.attempts),
            letter.failed_at.isoformat(timespec="seconds"),
            letter.error,
        )
    Console(width=200).print(table)
    click.echo(f"{len(letters)} dead letter(s)")


@dead_letters_group.command("replay")
@click.argument("letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@_config_errors_in_one_line
def replay_dead_letters(letter_id: str | None, replay_all: bool) -> None:
    """Send dead letters again with fresh retries: one by ID, or --all."""
    from shop_kernel.messaging.dead_letters import dead_letters, replay  # noqa: PLC0415

    if (letter_id is None) == (not replay_all):
        raise click.UsageError("give either a dead letter's ID or --all")
    broker = _broker()
    letters = [letter for letter in dead_letters(broker) if replay_all or letter.id == letter_id]
    if letter_id is not None and not letters:
        raise click.ClickException(f"no dead letter with id {letter_id}")
    for letter in letters:
        replay(broker, letter)
        click.echo(f"replayed {letter.id} ({letter.event_type} -> {letter.subscriber})")


@events.command("unrouted")
@_config_errors_in_one_line
def list_unrouted() -> None:
    """Events kept back because no running release knows their type (never dropped)."""
    import asyncio  # noqa: PLC0415

    from shop_kernel.messaging.registry import unrouted  # noqa: PLC0415

    parked = asyncio.run(_with_engine(unrouted))
    for entry in parked:
        click.echo(
            f"{entry.event_type}: {entry.events} event(s), oldest {entry.oldest_age_seconds:.0f} s"
        )
    click.echo(f"{sum(e.events for e in parked)} unrouted event(s)")


@events.command("releases")
@_config_errors_in_one_line
def list_releases() -> None:
    """The running releases the relays route by: their processes and their routes."""
    import asyncio  # noqa: PLC0415
    from functools import partial  # noqa: PLC0415

    from shop_kernel.messaging.registry import running_releases  # noqa: PLC0415
    from shop_platform.backbone import release_ttl  # noqa: PLC0415

    settings = _settings("cli")
    found = asyncio.run(_with_engine(partial(running_releases, ttl=release_ttl(settings))))
    for release in found:
        processes = ", ".join(f"{role}@{host}:{pid}" for role, host, pid in release.processes)
        click.echo(f"{release.release}: {release.routes} route(s); {processes}")
    click.echo(f"{len(found)} running release(s)")


async def _with_engine(query: Callable[[AsyncEngine], Awaitable[R]]) -> R:
    from shop_kernel.sql import create_engine  # noqa: PLC0415

    engine = create_engine(_settings("cli"))
    try:
        return await query(engine)
    finally:
        await engine.dispose()


@shop.group()
def projections() -> None:
    """Read views in MongoDB."""


@projections.command()
@click.argument("view", required=False)
@_config_errors_in_one_line
def rebuild(view: str | None) -> None:
    """Rebuild VIEW (or every view) from the write store; readers keep the old one meanwhile."""
    import asyncio  # noqa: PLC0415

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: PLC0415

    from shop_platform.projections import UnknownView, rebuild_views, views_of  # noqa: PLC0415

    settings = _settings("cli")
    try:
        chosen = views_of(CONTEXTS, view)
    except UnknownView as exc:
        raise click.ClickException(str(exc)) from None
    if not chosen:
        click.echo("no read views are declared yet")
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as bar:

        def progress(read_view: ReadView, total: int) -> Callable[[int], None]:
            task = bar.add_task(read_view.name, total=total)
            return lambda done: bar.update(task, completed=done)

        rebuilt = asyncio.run(rebuild_views(settings, CONTEXTS, chosen, progress))
    for name, count in rebuilt.items():
        click.echo(f"{name}: {count} documents")


@shop.group()
def users() -> None:
    """Accounts that cannot be made through the API."""


@users.command("create-admin")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting for it.",
)
@_config_errors_in_one_line
def create_admin_command(email: str, password_stdin: bool) -> None:
    """Make sure EMAIL is an active admin (created with the given password if new)."""
    import asyncio  # noqa: PLC0415

    from shop_kernel.domain import DomainError  # noqa: PLC0415
    from shop_platform.admins import create_admin  # noqa: PLC0415

    settings = _settings("cli")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = asyncio.run(create_admin(settings, email, password))
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"admin {user.user_id} ({user.email})")


def _broker() -> RedisBroker:
    return Backbone.of(CONTEXTS).broker(_settings("cli"))


def main() -> None:
    shop()


if __name__ == "__main__":
    main()
