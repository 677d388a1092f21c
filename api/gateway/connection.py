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
from typing import Any

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.temporal import connect_client
from workflows.models import SA_OWNER, SEARCH_ATTRIBUTES, start_search_attributes

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
        self._registered: dict[str, int] | None = None  # search attribute name -> IndexedValueType

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

    async def start_search_attributes(self, owner: str) -> TypedSearchAttributes | None:
        """What a task starts with: `start_search_attributes` when the namespace has every attribute the
        workflow keeps (it then skips its own check), else `Owner` alone if that one is registered, else none.
        The namespace is asked once per gateway."""
        registered = await self._registered_search_attributes()

        def has(key: SearchAttributeKey[Any]) -> bool:
            return registered.get(key.name) == key.indexed_value_type

        if all(has(key) for key in SEARCH_ATTRIBUTES):
            return start_search_attributes(owner)
        if has(SA_OWNER):
            return TypedSearchAttributes([SearchAttributePair(SA_OWNER, owner)])
        return None

    async def _registered_search_attributes(self) -> dict[str, int]:
        if self._registered is None:
            client = await self.get()
            try:
                response = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=client.namespace)
                )
            except RPCError as exc:
                if exc.status not in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                    self._registered = {}  # e.g. not permitted: don't ask again
                logger.info("cannot list search attributes (%s); owner is recorded in the memo only", exc)
                return {}
            self._registered = dict(response.custom_attributes)
            missing = [key.name for key in SEARCH_ATTRIBUTES if key.name not in self._registered]
            logger.info("search attributes not registered: %s", ", ".join(missing) or "none")
        return self._registered
