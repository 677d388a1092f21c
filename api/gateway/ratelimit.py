"""Per-API-key rate limiting with the `limits` library (moving window; memory or Redis storage)."""

from __future__ import annotations

import logging
import math
import time

from limits import parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

logger = logging.getLogger(__name__)


class RateLimitExceeded(Exception):
    def __init__(self, limit: str, retry_after: int) -> None:
        super().__init__(f"rate limit {limit} exceeded for this API key; retry in {retry_after} s")
        self.retry_after = retry_after


class KeyRateLimiter:
    """`check(tenant)` counts one request and raises RateLimitExceeded past any of the configured limits.

    `storage_uri` is a `limits` storage URI: `memory://` for a single gateway, `redis://host:6379` (or
    `redis+sentinel://`, `memcached://`...) for several replicas sharing the counts.
    """

    def __init__(self, spec: str, storage_uri: str) -> None:
        self.items = parse_many(spec)
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri))

    async def check(self, identifier: str) -> None:
        for item in self.items:
            try:
                allowed = await self._limiter.hit(item, "gateway", identifier)
                if allowed:
                    continue
                stats = await self._limiter.get_window_stats(item, "gateway", identifier)
            except Exception as exc:  # a storage outage must not take the API down: fail open, loudly
                logger.warning("rate-limit storage error (%s); request allowed", exc)
                return
            raise RateLimitExceeded(str(item), max(1, math.ceil(stats.reset_time - time.time())))
