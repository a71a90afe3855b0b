"""The service's processes keep few malloc arenas (shop_platform.memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's"
)

# Eight threads allocate at once, then glibc describes its heaps: one per arena.
PROBE = """
import ctypes, ctypes.util, sys, tempfile, threading
from shop_platform.memory import keep_few_malloc_arenas
print(keep_few_malloc_arenas())
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
together = threading.Barrier(8)
def allocate():
    together.wait()
    for _ in range(200):
        libc.malloc(1000)
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    described = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, described)
    libc.fclose(described)
    print(open(out.name).read().count("<heap nr="))
"""


def _arenas(**env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    applied, heaps = probe.stdout.split()
    return applied, int(heaps)


def test_a_process_of_the_service_keeps_two_arenas_however_many_threads_allocate() -> None:
    assert _arenas() == ("True", 2)


def test_an_operators_malloc_arena_max_is_left_to_glibc() -> None:
    applied, heaps = _arenas(MALLOC_ARENA_MAX="4")
    assert applied == "False"
    assert heaps == 4  # glibc's own setting held, not the service's two
