"""One connection per MCP server per worker, kept and shared by every call, so a call costs the call and not a
server's start (a stdio server takes most of a second to spawn and initialise; a call, milliseconds).

A connection is opened at its server's first use. It is closed when it has been idle for `idle_seconds`, when a
call finds it broken (the process died, the HTTP session failed, a request timed out: the next call opens a new
one), and when the worker stops (`aclose`: every stdio process is ended). Each connection lives in one task of
its own, as the MCP SDK's transports want (their context is entered and left in the same task).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from activities.mcp_tools.config import ServerConfig

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def connect(config: ServerConfig) -> AsyncIterator[Client]:
    """An initialised MCP client session with the server (its process started, for stdio)."""
    if config.command is not None:
        server: Any = StdioServerParameters(command=config.command, args=config.args, env=config.env, cwd=config.cwd)
        async with Client(server, cache=None) as client:
            yield client
        return
    assert config.url is not None
    http = create_mcp_http_client(headers=config.headers or None)
    async with http, Client(streamable_http_client(config.url, http_client=http), cache=None) as client:
        yield client


class Connection:
    """One open session, owned by its own task from start to close."""

    def __init__(self, name: str, config: ServerConfig) -> None:
        self.name = name
        self.broken = False
        self.inflight = 0
        self.idle_timer: asyncio.TimerHandle | None = None
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.create_task(self._run(config), name=f"mcp-{name}")

    async def _run(self, config: ServerConfig) -> None:
        # whatever ends it is recorded: the next call sees it, and the pool replaces the connection
        try:
            async with connect(config) as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            self.broken = True
            if not self._ready.done():
                self._ready.set_exception(exc)
            elif not self._stop.is_set():
                logger.warning("MCP server %r connection ended: %s", self.name, exc)

    async def client(self) -> Client:
        return await asyncio.shield(self._ready)

    async def close(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self._stop.set()
        if not self._ready.done():
            self._owner.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self._owner), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            self._owner.cancel()
            with contextlib.suppress(BaseException):
                await self._owner
        if self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # retrieved: an open that failed is not reported again at garbage collection


class McpPool:
    """The worker's connections, one per server, opened on first use."""

    def __init__(self, servers: dict[str, ServerConfig], idle_seconds: float = 300.0) -> None:
        self.servers = servers
        self.idle_seconds = idle_seconds
        self._connections: dict[str, Connection] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0  # connections opened so far (a restart is a new one)

    def _connection(self, name: str) -> Connection:
        found = self._connections.get(name)
        if found is None or found.broken:
            if found is not None:
                self._retire(found)
            found = self._connections[name] = Connection(name, self.servers[name])
            self.opened += 1
        return found

    def _retire(self, connection: Connection) -> None:
        """Take the connection out of the pool and close it in the background (calls still on it fail)."""
        connection.broken = True
        if self._connections.get(connection.name) is connection:
            del self._connections[connection.name]
        task = asyncio.create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @contextlib.asynccontextmanager
    async def session(self, name: str, broken: Callable[[BaseException], bool]) -> AsyncIterator[Client]:
        """The server's client for one call; an error for which `broken` says so retires the connection."""
        connection = self._connection(name)
        connection.inflight += 1
        if connection.idle_timer is not None:
            connection.idle_timer.cancel()
            connection.idle_timer = None
        try:
            yield await connection.client()
        except BaseException as exc:
            if connection.broken or broken(exc):
                self._retire(connection)
            raise
        finally:
            connection.inflight -= 1
            if connection.inflight == 0 and not connection.broken:
                loop = asyncio.get_running_loop()
                connection.idle_timer = loop.call_later(self.idle_seconds, self._evict_if_idle, connection)

    def _evict_if_idle(self, connection: Connection) -> None:
        if connection.inflight == 0 and self._connections.get(connection.name) is connection:
            logger.info("MCP server %r idle for %.0f s: connection closed", connection.name, self.idle_seconds)
            self._retire(connection)

    @property
    def open_servers(self) -> list[str]:
        return sorted(self._connections)

    async def aclose(self) -> None:
        """Close every connection (stdio processes end) and wait for them; the worker calls this when it stops."""
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in connections), *self._closing, return_exceptions=True)
