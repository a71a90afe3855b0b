"""Typed settings read from ``SHOP_*`` environment variables, refused early with a clear message.

The service's own settings are :class:`Settings` (stores, the event backbone, HTTP, logs);
each context that has settings of its own declares a :class:`SettingsSection` in its module
(the users' token lifetime, the orders' pending timeout, the notifications' mail server and
subjects). They are all read from the one environment at start-up, and a context finds its
own with ``settings.section(Kind)``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, cast
from urllib.parse import urlsplit

import msgspec

PREFIX = "SHOP_"
# Variables the test harness reads; they configure pytest, not the service.
_FOREIGN_PREFIXES = ("SHOP_TEST_",)


def shown(raw: str, *, secret: bool = False) -> str:
    """A value as an error message may show it: secrets never, URL passwords masked."""
    if secret:
        return f"<{len(raw)} characters, not shown>"
    return repr(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw))


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def env_name(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


# A span of time in seconds, written in the environment as "90", "90s", "15m", "24h" or "7d".
Duration = Annotated[float, msgspec.Meta(gt=0, le=366 * 86_400)]
_DURATION = re.compile(r"\A\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*\Z")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
# Dramatiq forgets a dead letter after this long (the broker's dead-message TTL).
DEAD_LETTER_TTL_S = 30 * 86_400


def parse_duration(raw: str) -> float | None:
    """Seconds in ``raw`` ("90", "90s", "15m", "24h", "7d", "250ms"), or None if it is none."""
    match = _DURATION.match(raw)
    if match is None:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


S = TypeVar("S", bound="SettingsSection")


class SettingsSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings read from ``SHOP_<FIELD>`` variables: the service's own (:class:`Settings`)
    or a context's. A field's rules are its type's; ``check`` holds the rules across fields."""

    # Fields whose values an error message never shows.
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # URL fields and the schemes each may start with.
    url_schemes: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __post_init__(self) -> None:
        for field, schemes in self.url_schemes.items():
            value: str | None = getattr(self, field)
            if value is not None and not value.startswith(schemes):
                raise SettingsError(
                    f"{env_name(field)}: must start with one of {', '.join(schemes)}, "
                    f"got {shown(value)}"
                )

    def check(self) -> None:
        """Rules across fields, checked once every field is read (each field alone has been
        checked with the others at their defaults)."""

    @classmethod
    def env_names(cls) -> set[str]:
        return {env_name(name) for name in _env_fields(cls)}

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Self:
        """The section as ``environ`` sets it (unset fields keep their defaults)."""
        fields = _env_fields(cls)
        values: dict[str, Any] = {}
        for field in fields:
            raw = environ.get(env_name(field))
            if raw is None:
                continue
            name = env_name(field)
            if raw.strip() == "":
                raise SettingsError(f"{name}: is set but empty; unset it or give a value")
            value = raw
            if fields[field] == Duration:
                seconds = parse_duration(raw)
                if seconds is None:
                    raise SettingsError(
                        f"{name}: a duration like 90s, 15m, 24h or 7d, "
                        f"got {shown(raw, secret=field in cls.secret_fields)}"
                    )
                value = repr(seconds)
            try:
                parsed = msgspec.convert({field: value}, type=cls, strict=False)
            except msgspec.ValidationError as exc:
                raise SettingsError(_explain(cls, name, field, str(exc), raw)) from None
            values[field] = getattr(parsed, field)
        try:
            section = cls(**values)
        except msgspec.ValidationError as exc:  # pragma: no cover - fields were checked one by one
            raise SettingsError(str(exc)) from None
        section.check()
        return section


def _env_fields(cls: type[SettingsSection]) -> dict[str, Any]:
    """The fields read from the environment, with their types."""
    return {
        field.name: field.type
        for field in msgspec.structs.fields(cls)
        if field.name not in _NOT_FROM_ENV
    }


_NOT_FROM_ENV = frozenset({"sections"})


class Settings(SettingsSection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the service reads from its environment besides its contexts' sections. Unset
    service URLs mean embedded."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"bootstrap_admin_password"})
    url_schemes: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "database_url": ("postgresql://", "postgresql+psycopg://", "postgres://"),
        "mongodb_url": ("mongodb://", "mongodb+srv://"),
        "redis_url": ("redis://", "rediss://", "unix://"),
    }

    database_url: str | None = None
    mongodb_url: str | None = None
    mongodb_database: Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9_-]{1,63}\Z")] = "shop"
    redis_url: str | None = None
    # When both are set, the API makes sure at start-up that this admin exists (idempotent).
    bootstrap_admin_email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    bootstrap_admin_password: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    data_dir: str = ".shop"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    db_pool_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 10
    db_max_overflow: Annotated[int, msgspec.Meta(ge=0, le=500)] = 10
    request_max_body_size: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    health_timeout: Annotated[float, msgspec.Meta(gt=0, le=30)] = 2.0
    worker_threads: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    # The one currency the shop sells in (ISO 4217); every price and total is in it.
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = "EUR"
    # How long a delay queue's idle consumer waits at most before asking Redis again (the
    # retries it holds fall due in between). A queue's consumer wakes when a message is
    # enqueued, and asks anyway after at least a second (messages.broker.WokenConsumer).
    worker_idle_poll_ms: Annotated[int, msgspec.Meta(ge=10, le=10_000)] = 100
    # Every call to a store is bounded, so that a store that hangs costs a 503 (or a retried
    # delivery), never a request or a worker thread held forever. PostgreSQL: connecting
    # (libpq counts whole seconds, at least 2), waiting for a pooled connection, one
    # statement, one wait for a lock (shorter than a statement, so that a lock wait ends as a
    # lock timeout), and a transaction left idle (longer than a subscriber may take, as a
    # delivery keeps its transaction open while it sends a mail). Migrations and
    # `shop projections rebuild` have no statement, lock or idle bound: they take what the
    # data needs.
    db_connect_timeout: Duration = 5.0
    db_pool_timeout: Duration = 10.0
    db_statement_timeout: Duration = 30.0
    db_lock_timeout: Duration = 10.0
    db_idle_in_transaction_timeout: Duration = 120.0
    # MongoDB: one operation, from choosing the server to its answer. Redis: one command.
    mongodb_timeout: Duration = 10.0
    redis_timeout: Duration = 5.0
    # The event backbone: retries before a message is dead-lettered, the first back-off (it
    # doubles each time, up to 5 minutes), a handler's time limit, events per relay batch.
    event_max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 8
    event_min_backoff_ms: Annotated[int, msgspec.Meta(ge=10, le=3_600_000)] = 500
    event_time_limit_ms: Annotated[int, msgspec.Meta(ge=100, le=3_600_000)] = 60_000
    relay_batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # Past this, /health/ready's report calls the event backlog behind (it fails no probe).
    outbox_max_age: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 60.0
    # A subscriber that fails because a store or the mail server cannot be reached keeps
    # retrying (backing off to 30 s) for this long before its message is dead-lettered.
    event_outage_max_age: Duration = 86_400.0
    # Published events, handled-event records (the inbox) and Idempotency-Key answers are kept
    # this long, then purged in bounded batches every purge_interval. The inbox outlives the
    # dead letters: a dead letter replayed on its last day still finds what was handled.
    outbox_retention: Duration = 7 * 86_400.0
    inbox_retention: Duration = 35 * 86_400.0
    purge_interval: Duration = 300.0
    # The worker's Prometheus endpoint (one per worker program, whatever its process count).
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 9191
    # Comma-separated proxy addresses whose X-Forwarded-* headers are believed; none by default.
    trusted_proxies: str = ""
    # Where people reach the shop: the links in emails (a password reset) start with it.
    public_url: Annotated[str, msgspec.Meta(max_length=500)] = "http://localhost:8000"
    # Where traces go (OTLP over HTTP; spans are sent to <endpoint>/v1/traces); unset, the
    # service traces nothing (shop_kernel.tracing).
    otel_exporter_otlp_endpoint: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    # Each context's own settings, by the name of its section's type (``section``).
    sections: dict[str, Any] = msgspec.field(default_factory=dict[str, Any])

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_public_url()
        self._check_otlp_endpoint()
        if self.db_connect_timeout < 2 or int(self.db_connect_timeout) != self.db_connect_timeout:
            raise SettingsError(
                f"{env_name('db_connect_timeout')}: whole seconds, at least 2 (what libpq "
                f"can bound), got {self.db_connect_timeout:g} s"
            )

    def _check_public_url(self) -> None:
        parts = urlsplit(self.public_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or any(c.isspace() for c in self.public_url)
        ):
            raise SettingsError(
                f"{env_name('public_url')}: an http:// or https:// URL with a host and no "
                f"query or fragment, like https://shop.example.com, got {shown(self.public_url)}"
            )

    def _check_otlp_endpoint(self) -> None:
        endpoint = self.otel_exporter_otlp_endpoint
        if endpoint is None:
            return
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise SettingsError(
                f"{env_name('otel_exporter_otlp_endpoint')}: an http:// or https:// URL of an "
                f"OTLP collector, like http://collector:4318, got {shown(endpoint)}"
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        sections: Sequence[type[SettingsSection]] = (),
    ) -> Settings:
        """Read the service's settings and ``sections`` (its contexts') from ``environ``
        (default ``os.environ``); raise on the first bad one, or on a ``SHOP_*`` variable that
        none of them knows."""
        environ = os.environ if environ is None else environ
        known = cls.env_names().union(*(kind.env_names() for kind in sections))
        for name in environ:
            if (
                name.startswith(PREFIX)
                and name not in known
                and not name.startswith(_FOREIGN_PREFIXES)
            ):
                hint = difflib.get_close_matches(name, sorted(known), n=1)
                suggestion = f" (did you mean {hint[0]}?)" if hint else ""
                raise SettingsError(f"{name}: unknown setting{suggestion}")
        own = cls.read(environ)
        return own.with_sections(*(kind.read(environ) for kind in sections))

    def check(self) -> None:
        if self.inbox_retention <= DEAD_LETTER_TTL_S:
            raise SettingsError(
                f"{env_name('inbox_retention')}: must be longer than the "
                f"{DEAD_LETTER_TTL_S // 86_400} days dead letters are kept, "
                "so that a replayed one finds what was handled"
            )
        self._check_timeouts()
        if (self.bootstrap_admin_email is None) != (self.bootstrap_admin_password is None):
            raise SettingsError(
                f"{env_name('bootstrap_admin_email')} and "
                f"{env_name('bootstrap_admin_password')}: set both or neither"
            )

    def _check_timeouts(self) -> None:
        if self.db_lock_timeout >= self.db_statement_timeout:
            raise SettingsError(
                f"{env_name('db_lock_timeout')}: must be shorter than "
                f"{env_name('db_statement_timeout')}, so that a wait for a lock ends as a "
                "lock timeout (retried as contention), not as a slow statement"
            )
        if self.db_idle_in_transaction_timeout * 1000 <= self.event_time_limit_ms:
            raise SettingsError(
                f"{env_name('db_idle_in_transaction_timeout')}: must be longer than "
                f"{env_name('event_time_limit_ms')}: a delivery keeps its transaction open "
                "while its subscriber runs"
            )

    def require(self, field: str) -> str:
        """A store URL that must be configured, or one line saying how to fix its absence."""
        value: str | None = getattr(self, field)
        if value is None:
            raise SettingsError(
                f"{env_name(field)}: is not set (run `shop dev` for embedded services)"
            )
        return value

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def section(self, kind: type[S]) -> S:
        """A context's own settings: as read at start-up, or their defaults."""
        found = self.sections.get(kind.__name__)
        return found if isinstance(found, kind) else kind()

    def with_sections(self, *sections: SettingsSection) -> Settings:
        merged = {**self.sections, **{type(s).__name__: s for s in sections}}
        return msgspec.structs.replace(self, sections=merged)

    def with_overrides(self, **changes: Any) -> Settings:
        """These settings with ``changes``, whether they are the service's or a section's."""
        own = {name: value for name, value in changes.items() if name in _env_fields(Settings)}
        rest = {name: value for name, value in changes.items() if name not in own}
        sections = dict(self.sections)
        for key, found in sections.items():
            section = cast("SettingsSection", found)
            fields = _env_fields(type(section))
            mine = {name: rest.pop(name) for name in list(rest) if name in fields}
            if mine:
                sections[key] = msgspec.structs.replace(section, **mine)
        if rest:
            raise TypeError(f"not settings of this service or its sections: {sorted(rest)}")
        return msgspec.structs.replace(self, **own, sections=sections)


def _explain(cls: type[SettingsSection], name: str, field: str, message: str, raw: str) -> str:
    """Turn msgspec's message into one line for an operator: variable, problem, value."""
    message = message.split(" - at ", 1)[0]
    if message.startswith(name):  # raised by __post_init__, already names the variable
        return message
    value = shown(raw, secret=field in cls.secret_fields)
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    field_type = next(f.type for f in info.fields if f.name == field)
    if isinstance(field_type, msgspec.inspect.LiteralType):
        allowed = ", ".join(str(v) for v in field_type.values)
        return f"{name}: must be one of {allowed}, got {value}"
    message = message.replace(", got `str`", "")
    return f"{name}: {message[0].lower()}{message[1:]}, got {value}"
