"""The gateway's Temporal client, connected lazily so the gateway starts, and recovers, while Temporal is down.

The SDK's client reconnects by itself once it has connected; what it cannot do is exist before the first
successful connection. `TemporalConnection.get()` connects on first use, at most once per
`reconnect_interval` while the server is unreachable, and raises `TemporalUnavailable` (answered with 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from temporalio.client import Client

from orchestrator.temporal import connect_client

logger = logging.getLogger(__name__)


class TemporalUnavailable(Exception):
    """Temporal cannot be reached (or did not answer in time); the request gets 503."""


class TemporalConnection:
    def __init__(
        self,
        client: Client | None = None,
        connect: Callable[[], Awaitable[Client]] = connect_client,
        reconnect_interval: float = 2.0,
    ) -> None:
        self._client = client
        self._connect = connect
        self._reconnect_interval = reconnect_interval
        self._lock = asyncio.Lock()
        self._last_attempt = float("-inf")
        self._last_error = "not connected yet"
        # False once the namespace refused a start with the search attributes (see routes/tasks.py `_start`)
        self.search_attributes_registered = True

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                if time.monotonic() - self._last_attempt < self._reconnect_interval:
                    raise TemporalUnavailable(f"Temporal is unreachable: {self._last_error}")
                self._last_attempt = time.monotonic()
                try:
                    self._client = await self._connect()
                except Exception as exc:  # the SDK raises RuntimeError; anything else means the same here
                    self._last_error = str(exc) or type(exc).__name__
                    logger.warning("cannot connect to Temporal: %s", self._last_error)
                    raise TemporalUnavailable(f"Temporal is unreachable: {self._last_error}") from exc
                logger.info("connected to Temporal at %s", self._client.service_client.config.target_host)
            return self._client
