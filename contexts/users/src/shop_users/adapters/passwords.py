"""Argon2id password hashing kept off the event loop, and the common-password blocklist.

common_passwords.txt: the first 10,000 entries of the "passwords" frequency list shipped by the
zxcvbn 4.5.0 package (PyPI, MIT licence), lower-cased and de-duplicated, most common first.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
import weakref
from collections.abc import Callable
from importlib.resources import files
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import VerificationError, VerifyMismatchError

from shop_kernel.log import get_logger

log = get_logger(__name__)

# The OWASP Password Storage Cheat Sheet's minimum for Argon2id.
MIN_TIME_COST = 2
MIN_MEMORY_KIB = 19_456
MIN_PARALLELISM = 1

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Argon2PasswordHasher:
    """Argon2id hashes; at most ``max_concurrent`` hash or verify at a time on each event loop."""

    def __init__(
        self,
        *,
        time_cost: int = MIN_TIME_COST,
        memory_kib: int = MIN_MEMORY_KIB,
        parallelism: int = MIN_PARALLELISM,
        max_concurrent: int = 2,
    ) -> None:
        if (
            time_cost < MIN_TIME_COST
            or memory_kib < MIN_MEMORY_KIB
            or parallelism < MIN_PARALLELISM
        ):
            msg = (
                f"Argon2id parameters below the OWASP minimum (t>={MIN_TIME_COST}, "
                f"m>={MIN_MEMORY_KIB} KiB, p>={MIN_PARALLELISM})"
            )
            raise ValueError(msg)
        if max_concurrent < 1:
            msg = "max_concurrent must be at least 1"
            raise ValueError(msg)
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._max_concurrent = max_concurrent
        # An asyncio.Semaphore belongs to the loop it first waits on, and this object may outlive
        # a loop (tests, workers) or be built before any loop runs: one semaphore per loop.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()
        self._semaphores_lock = threading.Lock()
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    async def hash(self, password: str) -> str:
        """Hash with a fresh salt; ValueError if the password cannot be encoded as UTF-8."""
        return await self._off_loop(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True on a match; False on a mismatch and on a malformed or unsupported hash."""
        return await self._off_loop(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters (or cannot be read at all)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except ValueError:
            return True

    async def verify_dummy(self, password: str) -> None:
        """Spend what a verify spends, for an unknown account, so timing does not reveal it."""
        await self._off_loop(self._verify_dummy, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            secret = password.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates: no such password could ever have been hashed.
            return False
        try:
            return self._hasher.verify(password_hash, secret)
        except VerifyMismatchError:
            return False
        except (VerificationError, ValueError):
            # Neither the hash nor the password goes into the log: both are secrets.
            log.warning("stored password hash is malformed or unsupported")
            return False

    def _verify_dummy(self, password: str) -> None:
        with self._dummy_lock:
            dummy = self._dummy_hash
            if dummy is None:
                # Making the hash costs what a verify costs: even the first call does not stand out.
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))
                return
        self._verify(dummy, password)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._semaphores_lock:
            semaphore = self._semaphores.get(loop)
            if semaphore is None:
                semaphore = self._semaphores[loop] = asyncio.Semaphore(self._max_concurrent)
            return semaphore

    async def _off_loop(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        async with self._semaphore():
            work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                # A thread cannot be stopped: it keeps its slot until it ends, or cancelled
                # logins (client gone, timeouts) would let more hashes run than the cap allows.
                await asyncio.wait({work})
                if not work.cancelled():
                    work.exception()  # retrieved, so asyncio does not report it as lost
                raise


@functools.cache
def load_common_passwords() -> frozenset[str]:
    """The most common passwords, lower-case: compare against ``password.lower()``."""
    text = files("shop_users.adapters").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line)
