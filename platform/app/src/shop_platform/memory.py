"""How much memory the service's processes keep: glibc's malloc arenas.

glibc gives each new thread a malloc arena of its own, up to eight per core, and keeps what
each arena once held. A process whose threads come and go (the API's thread pool, a worker's
threads and its clients' background threads) so keeps far more than it uses: the API held
194 MB after a load test with glibc's default and 157 MB with two arenas, at the same CPU per
request (`tests/perf/harness.py --only a,b --quick`). Two arenas are what the service's
threads need: most of them wait on the event loop's thread, where the work is.

``MALLOC_ARENA_MAX`` in the environment is glibc's own setting and wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def keep_few_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap the process's malloc arenas before its threads start; whether it applied (only
    glibc has the setting, and an operator's ``MALLOC_ARENA_MAX`` is left alone)."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - glibc without its library cannot run Python
        return False
    libc = ctypes.CDLL(name)
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))
