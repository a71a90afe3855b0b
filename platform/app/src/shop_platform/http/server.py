"""uvicorn's server, ending with exit status 0 once a SIGTERM or SIGINT drain has finished."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class DrainingServer(uvicorn.Server):
    """On SIGTERM (or SIGINT) uvicorn stops accepting, lets the requests in flight finish
    (up to ``timeout_graceful_shutdown``) and runs the lifespan's shutdown. It then raises
    the signal again, so the process would end "killed by SIGTERM" (status 143) after a
    clean stop. A drained stop is a success: this server ends normally instead, and
    supervisors see 0. A stop that fails still raises."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # drained: nothing to raise again
