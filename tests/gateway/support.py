"""Fixtures and helpers of the gateway tests: two tenants, the app over ASGI, a live uvicorn server, SSE parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client, Interceptor, OutboundInterceptor, QueryWorkflowInput

from api.auth import ApiKeyRegistry
from api.gateway.main import create_app
from api.gateway.settings import Settings
from testbed.server import loopback_listener
from tests.support import ALICE_KEY, BOB_KEY

ALICE = {"X-API-KEY": ALICE_KEY}
BOB = {"X-API-KEY": BOB_KEY}
REGISTRY = ApiKeyRegistry({"alice": ALICE_KEY, "bob": BOB_KEY})

# A task that finishes right after the docs: no feedback window, so nothing lingers.
QUICK_TASK: dict[str, Any] = {"task_description": "write an add function", "feedback_window_seconds": 0}


def gateway_settings(task_queue: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "temporal_task_queue": task_queue,
        "gateway_poll_interval": 0.05,
        "gateway_rate_limit": "1000/second",
        "gateway_rpc_timeout": 5.0,
        "gateway_reconnect_interval": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def make_app(task_queue: str, client: Client | None, **overrides: Any) -> FastAPI:
    return create_app(gateway_settings(task_queue, **overrides), client=client, registry=REGISTRY)


@contextlib.asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as http:
        yield http


@contextlib.asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port, in this event loop (SSE streams really stream); yields its URL."""
    sock = loopback_listener()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: int | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(text: str) -> list[SseEvent]:
    return [event for block in text.replace("\r\n", "\n").split("\n\n") if (event := _parse_block(block))]


def _parse_block(block: str) -> SseEvent | None:
    event = SseEvent()
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event.event = value
        elif name == "id":
            event.id = int(value)
    if not data:
        return None
    event.data = "\n".join(data)
    return event


async def read_sse(response: httpx.Response, stop: Callable[[SseEvent], bool] = lambda e: False) -> list[SseEvent]:
    """Read a streaming response's events until it ends or `stop(event)` is true."""
    events: list[SseEvent] = []
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk.replace("\r\n", "\n")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if (event := _parse_block(block)) is not None:
                events.append(event)
                if stop(event):
                    return events
    return events


class Reader:
    """Reads one SSE response in steps (httpx closes a response whose byte iterator is left, so keep one)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._buffer = ""
        self.events: list[SseEvent] = []

    async def until(self, stop: Callable[[SseEvent], bool] = lambda e: False) -> list[SseEvent]:
        """The events up to the first for which `stop` holds (all, when the stream ends first)."""
        start = len(self.events)
        async for chunk in self._chunks:
            self._buffer += chunk.replace("\r\n", "\n")
            while "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                self.events += parse_sse(block + "\n\n")
                if self.events[start:] and stop(self.events[-1]):
                    return self.events[start:]
        return self.events[start:]


def numbered(events: list[SseEvent]) -> list[int]:
    return [e.id for e in events if e.id is not None]


async def wait_for_status(
    http: httpx.AsyncClient, session_id: str, wanted: set[str], headers: dict[str, str]
) -> dict[str, Any]:
    """Poll /status until the task reaches one of `wanted` (30 s at most)."""
    state: dict[str, Any] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while True:
                response = await http.get(f"/status/{session_id}", headers=headers)
                assert response.status_code == 200, response.text
                state = response.json()
                if state["task_status"] in wanted:
                    return state
                await asyncio.sleep(0.1)
    pytest.fail(f"{session_id} stayed {state.get('task_status')}, wanted {wanted}")


class TcpProxy:
    """Forwards a local port to Temporal; stopping it looks like Temporal going down, starting it like recovery."""

    def __init__(self, target: str, port: int) -> None:
        host, _, target_port = target.rpartition(":")
        self.target = (host or "127.0.0.1", int(target_port))
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


# ---------------------------------------------------------------- rendered HTML

INERT_TAGS = {"div", "p", "h1", "h2", "pre", "code", "span", "a", "ol", "ul", "li", "em", "strong", "table", "thead",
              "tbody", "tr", "th", "td"}  # fmt: skip


class Elements(HTMLParser):
    """The elements and attributes a browser would build from the HTML (text, escaped or not, is not one)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(html: str) -> Elements:
    """Only formatting elements; no event handler, no style, links to http(s) only; nothing that fetches."""
    parsed = Elements(html)
    for tag, attrs in parsed.found:
        assert tag in INERT_TAGS, (tag, html)
        assert not [name for name in attrs if name.startswith("on") or name in ("style", "src", "srcset")], attrs
        if "href" in attrs:
            assert re.match(r"^(https?:|mailto:)", attrs["href"] or ""), attrs
    return parsed


class CountQueries(Interceptor):
    """Counts the queries a client sends, by name; `answered(name)`, when given, runs once each has its answer,
    before the caller gets it."""

    def __init__(self, answered: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.sent: Counter[str] = Counter()
        self.answered = answered

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Outbound(OutboundInterceptor):
            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                counter.sent[input.query] += 1
                result = await super().query_workflow(input)
                if counter.answered is not None:
                    await counter.answered(input.query)
                return result

        return Outbound(next)


def counting_queries(
    client: Client, answered: Callable[[str], Awaitable[None]] | None = None
) -> tuple[Client, CountQueries]:
    """A client like `client` whose queries are counted (see CountQueries)."""
    queries = CountQueries(answered)
    return intercepted(client, queries), queries


def intercepted(client: Client, interceptor: Interceptor) -> Client:
    """A client like `client` (its connection, namespace and converter) whose calls go through `interceptor`."""
    config = client.config()
    config["interceptors"] = [interceptor]
    return Client(**config)
