"""A store that hangs, on demand: a TCP server of the test's own in front of a real store.

It passes every byte through to the store until it is told to hang. From then on it answers
nothing: the connections it holds stay open and silent (whatever the store still says on
them is dropped), and the connections it accepts are never answered. Told to recover, it
passes new connections through again; the ones that hung stay hung, as a client must not
use a connection again once it gave up on it. ``close`` closes every socket it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_DEFAULT_PORTS = {"postgresql": 5432, "mongodb": 27017, "redis": 6379}


class HungStore:
    def __init__(self, store_url: str) -> None:
        parts = urlsplit(store_url)
        self._store_url = store_url
        self._scheme = parts.scheme.split("+", 1)[0]
        query = dict(parse_qsl(parts.query))
        port = parts.port or _DEFAULT_PORTS[self._scheme]
        # A PostgreSQL URL may name a Unix socket's folder instead of a host (embedded server).
        self._socket = f"{query['host']}/.s.PGSQL.{port}" if not parts.hostname else None
        self._address = (parts.hostname or "", port)
        self._era = 0  # a connection passes through while the era it began in lasts
        self._hanging = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def scheme(self) -> str:
        """The store's kind: ``postgresql``, ``mongodb`` or ``redis``."""
        return self._scheme

    @property
    def url(self) -> str:
        """The store's URL with this server in the store's place."""
        parts = urlsplit(self._store_url)
        user, _, _ = parts.netloc.rpartition("@")
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hang(self) -> None:
        self._hanging = True
        self._era += 1

    def recover(self) -> None:
        self._hanging = False
        self._era += 1

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _passing(self, era: int) -> bool:
        return not self._hanging and era == self._era

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        self._writers.add(writer)
        era = self._era
        try:
            if not self._passing(era):
                await self._pump(reader, None, era)  # accepted, never answered
                return
            if self._socket is not None:
                store_reader, store_writer = await asyncio.open_unix_connection(self._socket)
            else:
                store_reader, store_writer = await asyncio.open_connection(*self._address)
            self._writers.add(store_writer)
            answers = asyncio.ensure_future(self._pump(store_reader, writer, era))
            try:
                await self._pump(reader, store_writer, era)  # until the client leaves
            finally:
                store_writer.transport.abort()
                answers.cancel()
                await asyncio.gather(answers, return_exceptions=True)
        finally:
            writer.transport.abort()
            self._serving.discard(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None, era: int
    ) -> None:
        """Pass what ``source`` sends to ``sink`` while the connection passes through, and
        drop it once it hangs. Its end ends ``sink`` only while passing through: a store
        that hangs says nothing, not even goodbye."""
        with contextlib.suppress(OSError):  # a socket closed under the pump
            while data := await source.read(65536):
                if sink is not None and self._passing(era):
                    sink.write(data)
                    await sink.drain()
        if sink is not None and self._passing(era):
            sink.close()
