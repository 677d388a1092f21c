"""API keys shared by the gateway and the memory API.

Keys come from the environment, one per tenant:

* ``ORCHESTRATOR_API_KEYS="alice=<key>,bob=<key>"`` (several tenants), and/or
* ``ORCHESTRATOR_API_KEYS_FILE=/path`` with one ``tenant=<key>`` per line (``#`` comments allowed), and/or
* ``ORCHESTRATOR_API_KEY=<key>`` (a single key for the tenant ``default``).

Keys are compared in constant time. A service refuses to start with no key, or with a key that is too short or
looks like a placeholder. Only the tenant name is ever stored anywhere (memo, search attribute, logs): never the key.

The tenant `default` (the key of ORCHESTRATOR_API_KEY, the one `make run` writes) is the operator's: it owns the
tasks started without an owner (the `temporal` CLI) and sees, through the codec server, the payloads encrypted for
no tenant.

Every refusal is logged (client address, method, route, reason; never the key), and an address that presents
AUTH_FAILURE_LIMIT wrong or missing keys (default 20 a minute, `limits` notation) is answered 429 with Retry-After
until its window has room again, whatever key it sends meanwhile. The counts are per process.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

MIN_KEY_LENGTH = 16
FAILURE_LIMIT_ENV = "AUTH_FAILURE_LIMIT"
DEFAULT_FAILURE_LIMIT = "20/minute"
OPERATOR_TENANT = "default"
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_TENANT_RE = re.compile(TENANT_PATTERN)
_PLACEHOLDERS = {
    "changeme",
    "change-me",
    "secret",
    "your-api-key",
    "api-key",
    "apikey",
    "password",
    "xxx",
    "test",
}


class ApiKeyConfigError(ValueError):
    """The API key configuration is missing or unsafe; the service must not start."""


def _looks_like_placeholder(key: str) -> bool:
    lowered = key.lower()
    return (
        lowered in _PLACEHOLDERS
        or lowered.startswith(("changeme", "your-", "<"))
        or len(set(key)) <= 2  # "aaaaaaaaaaaaaaaa", "0000..."
    )


def _parse_pairs(text: str, origin: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for raw in re.split(r"[,\n]", text):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        tenant, sep, key = item.partition("=")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ApiKeyConfigError(f"{origin}: expected 'tenant=key' entries, got an entry without '='")
        pairs[tenant] = key
    return pairs


@dataclass(frozen=True)
class ApiKeyRegistry:
    """Maps API keys to tenant names; look-ups run in constant time per key."""

    keys_by_tenant: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.keys_by_tenant:
            raise ApiKeyConfigError(
                "no API key configured: set ORCHESTRATOR_API_KEY (or ORCHESTRATOR_API_KEYS / "
                "ORCHESTRATOR_API_KEYS_FILE); `make run` writes a random one into .env"
            )
        seen: set[str] = set()
        for tenant, key in self.keys_by_tenant.items():
            if not _TENANT_RE.match(tenant):
                raise ApiKeyConfigError(f"tenant name {tenant!r} must match {_TENANT_RE.pattern}")
            if len(key) < MIN_KEY_LENGTH or _looks_like_placeholder(key):
                raise ApiKeyConfigError(
                    f"the API key of tenant {tenant!r} is empty, shorter than {MIN_KEY_LENGTH} characters "
                    "or a placeholder; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            if key in seen:
                raise ApiKeyConfigError(f"the API key of tenant {tenant!r} is shared with another tenant")
            seen.add(key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiKeyRegistry:
        env = os.environ if environ is None else environ
        keys: dict[str, str] = {}
        if single := env.get("ORCHESTRATOR_API_KEY", "").strip():
            keys["default"] = single
        if many := env.get("ORCHESTRATOR_API_KEYS", "").strip():
            keys.update(_parse_pairs(many, "ORCHESTRATOR_API_KEYS"))
        if path := env.get("ORCHESTRATOR_API_KEYS_FILE", "").strip():
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ApiKeyConfigError(f"ORCHESTRATOR_API_KEYS_FILE {path!r} cannot be read: {exc}") from exc
            keys.update(_parse_pairs(text, path))
        return cls(keys)

    def tenant_for(self, presented: str | None) -> str | None:
        """The tenant owning ``presented``, or None. Every key is compared, so timing reveals nothing."""
        if not presented:
            return None
        candidate = presented.encode("utf-8", "surrogateescape")
        found: str | None = None
        for tenant, key in self.keys_by_tenant.items():
            if hmac.compare_digest(candidate, key.encode("utf-8")):
                found = tenant
        return found


def trusted_proxies(environ: Mapping[str, str] | None = None) -> str:
    """uvicorn's `forwarded_allow_ips`: the proxies whose X-Forwarded-For names the client (FORWARDED_ALLOW_IPS;
    none by default, where uvicorn trusts every local client, which could then pick the address it is throttled as)."""
    return (os.environ if environ is None else environ).get("FORWARDED_ALLOW_IPS", "")


class FailedAuthThrottle:
    """Counts failed keys per client address (`limits`, moving window, in memory); past the limit, 429."""

    def __init__(self, spec: str = DEFAULT_FAILURE_LIMIT) -> None:
        self.items = parse_many(spec)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FailedAuthThrottle:
        env = os.environ if environ is None else environ
        return cls(env.get(FAILURE_LIMIT_ENV, "").strip() or DEFAULT_FAILURE_LIMIT)

    async def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None while it is under the limit."""
        for item in self.items:
            if not await self._limiter.test(item, "auth-failures", address):
                stats = await self._limiter.get_window_stats(item, "auth-failures", address)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def failed(self, address: str) -> None:
        for item in self.items:
            await self._limiter.hit(item, "auth-failures", address)


def _throttle(request: Request) -> FailedAuthThrottle:
    """The app's throttle (`app.state.auth_throttle`), made from the environment on first use."""
    state = request.app.state
    if getattr(state, "auth_throttle", None) is None:
        state.auth_throttle = FailedAuthThrottle.from_env()
    throttle: FailedAuthThrottle = state.auth_throttle
    return throttle


async def authenticate(request: Request, presented: str | None, refusal: HTTPException) -> str:
    """The tenant owning `presented`; else `refusal` (a 401), logged and counted against the client's address,
    or a 429 while that address is over its limit of failures."""
    address = request.client.host if request.client else "unknown"
    route = f"{request.method} {request.url.path}"
    throttle = _throttle(request)
    if (retry_after := await throttle.retry_after(address)) is not None:
        logger.warning("auth refused: %s from %s: too many failed API keys; retry in %d s", route, address, retry_after)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many requests with a missing or unknown API key from this address; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    registry: ApiKeyRegistry = request.app.state.registry
    tenant = registry.tenant_for(presented)
    if tenant is None:
        await throttle.failed(address)
        logger.warning("auth refused: %s from %s: %s API key", route, address, "unknown" if presented else "no")
        raise refusal
    return tenant


API_KEY_HEADER = APIKeyHeader(
    name="X-API-KEY", auto_error=False, description="a key from ORCHESTRATOR_API_KEY / ORCHESTRATOR_API_KEYS(_FILE)"
)


async def request_tenant(request: Request, key: Annotated[str | None, Depends(API_KEY_HEADER)]) -> str:
    """FastAPI dependency: the tenant behind the request's X-API-KEY (the app keeps its registry in
    `app.state.registry`), or 401 (429 after too many failures from the client's address)."""
    return await authenticate(
        request, key, HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or unknown X-API-KEY header")
    )


BEARER = HTTPBearer(
    auto_error=False, description="the same key as `Authorization: Bearer <key>` (the Temporal Web UI, `--codec-auth`)"
)


async def request_tenant_key_or_bearer(
    request: Request,
    key: Annotated[str | None, Depends(API_KEY_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> str:
    """Like `request_tenant`, with the key in X-API-KEY or as a bearer token (what browsers and the CLI send)."""
    refusal = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or unknown API key (X-API-KEY or Authorization: Bearer)",
        headers={"WWW-Authenticate": "Bearer"},
    )
    return await authenticate(request, key or (bearer.credentials if bearer else None), refusal)
