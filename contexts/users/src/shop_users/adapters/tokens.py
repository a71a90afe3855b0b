"""Access tokens: issued at sign-in, and checked for the platform on every request.

Tokens are HS256 JWTs (algorithm allowlist, issuer, audience, required claims, expiry) that
carry the account's token generation. :class:`TokenAuthenticator` is the kernel's
``Authenticator``: a token passes when it is ours and unexpired and the account exists, is
active and still has the token's generation. The account is looked up on every request
through a one-second cache in the process in front of a two-second one in Redis, so a
deactivated account, a changed role or a bumped token generation (a new password, a reset)
takes effect within three seconds (API.md allows five).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol
from uuid import UUID

import msgspec
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop_kernel.auth import Principal, Role
from shop_kernel.log import get_logger
from shop_kernel.settings import Settings, SettingsError, env_name
from shop_users.settings import UsersSettings

log = get_logger(__name__)

ISSUER: Final = "shop"
AUDIENCE: Final = "shop-api"
ALGORITHM: Final = "HS256"
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub")
SIGNING_KEY_FILE: Final = "jwt-signing-key"
MIN_KEY_LENGTH: Final = 32
PRINCIPAL_CACHE_TTL_MS: Final = 2000
# How long a process keeps an account it looked up, and how many it keeps.
LOCAL_TTL_S: Final = 1.0
LOCAL_ENTRIES: Final = 10_000
# How many checked tokens a process keeps (each until it expires).
CHECKED_ENTRIES: Final = 10_000


# ------------------------------------------------------------------------------ signing key


def signing_key(settings: Settings) -> str:
    """``SHOP_JWT_SECRET``, or else a random key made once and kept under the data dir.

    The file appears atomically with its content (written to a private ``O_EXCL`` draft with
    mode 0600, then hard-linked into place), so processes starting together agree on one key.
    """
    secret = settings.section(UsersSettings).jwt_secret
    if secret is not None:
        return secret
    path = settings.data_path / SIGNING_KEY_FILE
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{SIGNING_KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(64) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"{path}: the generated token signing key is damaged; delete the file "
            f"(every issued token stops working) or set {env_name('jwt_secret')}"
        )
    return key


# ------------------------------------------------------------------------------ tokens


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """What the auth check needs to know about an account."""

    user_id: UUID
    role: Role
    is_active: bool
    token_generation: int


@dataclass
class AccessToken(Token):
    """The claims of a shop access token: Litestar's, plus the account's token generation."""

    gen: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class Tokens:
    """Issues access tokens and checks them, with one key and one set of claims. The key is
    found (or made) when a token is first issued or checked: a process that never does (a
    worker, a CLI command) never touches it."""

    def __init__(self, settings: Settings, key: str | None = None) -> None:
        if key is not None and len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"a signing key has at least {MIN_KEY_LENGTH} characters")
        self._settings = settings
        self._key = key
        self.ttl_s = settings.section(UsersSettings).access_token_ttl_s

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = signing_key(self._settings)
        return self._key

    def __repr__(self) -> str:
        return f"Tokens(ttl_s={self.ttl_s})"

    def issue(self, record: PrincipalRecord) -> IssuedToken:
        if not record.is_active:
            raise ValueError("no token for a deactivated account")
        now = datetime.now(UTC)
        token = AccessToken(
            sub=str(record.user_id),
            iat=now,
            exp=now + timedelta(seconds=self.ttl_s),
            iss=ISSUER,
            aud=AUDIENCE,
            jti=uuid.uuid4().hex,
            gen=record.token_generation,
        )
        return IssuedToken(token.encode(self.key, ALGORITHM), self.ttl_s)

    def decode(self, encoded: str) -> AccessToken:
        """The checked claims; ``NotAuthorizedException`` for anything not issued by us."""
        return AccessToken.decode(
            encoded,
            self.key,
            ALGORITHM,
            audience=[AUDIENCE],
            issuer=[ISSUER],
            require_claims=REQUIRED_CLAIMS,
        )


# ------------------------------------------------------------------------------ principals


class PrincipalSource(Protocol):
    async def load(self, user_id: UUID) -> PrincipalRecord | None: ...


def principal_cache_key(user_id: UUID) -> str:
    """Delete this key to make a change to the account count at once instead of within 2 s."""
    return f"shop:principal:{user_id}"


class CachedPrincipals:
    """A ``PrincipalSource`` that asks this process (1 s), then Redis (2 s), and the real
    source on a miss; a Redis outage only costs the shared cache."""

    def __init__(
        self,
        source: PrincipalSource,
        redis: Redis,
        *,
        ttl_ms: int = PRINCIPAL_CACHE_TTL_MS,
        local_ttl_s: float = LOCAL_TTL_S,
    ) -> None:
        self._source = source
        self._redis = redis
        self._ttl_ms = ttl_ms
        self._local_ttl_s = local_ttl_s
        self._local: OrderedDict[UUID, tuple[float, PrincipalRecord | None]] = OrderedDict()

    async def load(self, user_id: UUID) -> PrincipalRecord | None:
        now = time.monotonic()
        held = self._local.get(user_id)
        if held is not None and now - held[0] < self._local_ttl_s:
            return held[1]
        record = await self._shared(user_id)
        self._local[user_id] = (now, record)
        self._local.move_to_end(user_id)
        if len(self._local) > LOCAL_ENTRIES:
            self._local.popitem(last=False)
        return record

    async def _shared(self, user_id: UUID) -> PrincipalRecord | None:
        key = principal_cache_key(user_id)
        try:
            cached = await self._redis.get(key)
        except RedisError as exc:
            log.warning("principal cache unavailable", error=repr(exc))
            cached = None
        if cached is not None:
            try:
                return msgspec.json.decode(cached, type=PrincipalRecord | None)
            except msgspec.ValidationError:
                pass  # written by an older version: load it again
        record = await self._source.load(user_id)
        try:
            await self._redis.set(key, msgspec.json.encode(record), px=self._ttl_ms)
        except RedisError as exc:
            log.warning("principal cache unavailable", error=repr(exc))
        return record


@dataclass(frozen=True, slots=True)
class _Checked:
    """What a token that passed the signature and claims checks says."""

    user_id: UUID
    generation: int
    expires_at: float  # a Unix time


class TokenAuthenticator:
    """The kernel's ``Authenticator``: whom a bearer token names, checked against the
    account as it is now.

    The signature and the claims of a token are checked once: what a good token says is
    kept (at most ``CHECKED_ENTRIES`` tokens) until it expires, so that a client's next
    requests with it skip the HMAC and the parsing. What only the account can say (active,
    role, token generation) is asked every time.
    """

    def __init__(self, tokens: Tokens, principals: PrincipalSource) -> None:
        self._tokens = tokens
        self._principals = principals
        self._checked: OrderedDict[str, _Checked] = OrderedDict()

    async def principal(self, token: str) -> Principal | None:
        checked = self._check(token)
        if checked is None:
            return None
        record = await self._principals.load(checked.user_id)
        if record is None or not record.is_active or record.token_generation != checked.generation:
            return None
        return Principal(record.user_id, record.role)

    def _check(self, token: str) -> _Checked | None:
        known = self._checked.get(token)
        if known is not None:
            if time.time() < known.expires_at:
                self._checked.move_to_end(token)
                return known
            del self._checked[token]  # expired: checked again, and refused
        try:
            claims = self._tokens.decode(token)
            checked = _Checked(UUID(claims.sub), claims.gen, claims.exp.timestamp())
        except (NotAuthorizedException, ValueError):
            return None
        self._checked[token] = checked
        if len(self._checked) > CHECKED_ENTRIES:
            self._checked.popitem(last=False)
        return checked
