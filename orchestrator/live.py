"""The live channel: what a task's watchers see as it happens, carried over core NATS, off the task's history.

Without it (`NATS_URL` unset), a gateway follows a watched task with the workflow stream's long-poll update: every
batch a watcher receives is an update and a workflow task on the server and the worker, two events in history.
With it, the stream stays the task's record and the gateway's catch-up, and what happens next reaches the gateway
without any Temporal call:

- the workflow hands every item it appends to its stream (the `TaskEvent`, its topic and its offset) to its
  worker's `LivePublisher` as the workflow task that appends it runs, never while it replays history, as
  `workflow.logger` does (`offer`: no command, nothing in history, any thread);
- a model call publishes its streamed text (`llm_delta`) there too, straight from the activity, with no offset:
  nothing goes through the workflow (activities/deltas.py). Only while a gateway watches the task (`watching`):
  the call asks on the task's `watching` subject as it starts (every gateway feed of the task answers; with none,
  the NATS server answers "no responders" at once), and a feed that starts later says so on its `watched` subject;
- each gateway subscribes to the subjects of the tasks its clients watch (api/gateway/live.py).

A message is the item's payload, converted and then encoded by the worker client's data converter for that
workflow (so a tenant's task is encrypted for its tenant, as in history), with its topic and offset in headers.
Core NATS delivers at most once and keeps nothing, and a worker may stop between running a workflow task and
sending what it offered: the gateway reads what it missed from the workflow stream (one query, when an offset is
skipped or the task is quiet). A publish nobody subscribes to is dropped by the NATS server, so a task nobody
watches costs the worker one encode and one send per item, a question per model call, and no Temporal call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from temporalio.converter import DataConverter, WorkflowSerializationContext

logger = logging.getLogger(__name__)

SUBJECT_PREFIX = "orchestrator.live"
ASK_PREFIX = "orchestrator.watching"  # a model call asks whether a gateway watches the task; each feed of it answers
STARTED_PREFIX = "orchestrator.watched"  # a gateway feed that starts says so here
ASK_TIMEOUT = 0.25  # seconds a call waits for an answer; neither an answer nor "no responders": counted as watched
OFFSET_HEADER = "Orchestrator-Offset"  # the item's stream offset; absent on an llm_delta sent by a call
TOPIC_HEADER = "Orchestrator-Topic"
QUEUE_SIZE = 10_000  # items offered and not yet sent; beyond it they are dropped (the gateway reads them back)
CONNECT_TIMEOUT = 2  # seconds


def _token(name: str) -> str:
    """`name` as one NATS subject token: session ids and namespaces may hold '.', which separates tokens."""
    return name.replace("~", "~7E").replace(".", "~2E")


def subject(namespace: str, workflow_id: str, prefix: str = SUBJECT_PREFIX) -> str:
    """The subject of one task's live output (or, with another prefix, of its watch questions and announcements)."""
    return f"{prefix}.{_token(namespace)}.{_token(workflow_id)}"


def converter_for(converter: DataConverter, namespace: str, workflow_id: str) -> DataConverter:
    return converter.with_context(WorkflowSerializationContext(namespace=namespace, workflow_id=workflow_id))


@dataclass(frozen=True)
class LiveItem:
    namespace: str
    workflow_id: str
    topic: str
    offset: int | None  # None: an llm_delta a call sent (not on the stream)
    value: Any


async def connect(url: str, name: str) -> Nats:
    """A NATS connection that reconnects for ever once made. Raises when none is made within CONNECT_TIMEOUT."""
    nc = Nats()

    async def quiet(exc: Exception) -> None:  # nats-py logs every failed attempt by default
        logger.debug("NATS %s: %s", url, exc)

    try:
        await asyncio.wait_for(
            nc.connect(
                url,
                name=name,
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                error_cb=quiet,
            ),
            CONNECT_TIMEOUT,
        )
    except BaseException:
        await nc.close()
        raise
    return nc


async def flushed(nc: Nats, seconds: float = CONNECT_TIMEOUT) -> None:
    """Every command this connection sent so far (a subscription, a publish) has reached the NATS server.

    nats-py's `flush()` writes its PING to the socket at once, ahead of commands still waiting for the client's
    flusher task, so its PONG alone does not prove they arrived (a subscription then misses what another
    connection publishes right after). The flusher, woken before that PING was written, has written them by the
    time its PONG is read; a second PING goes behind them, and its PONG does prove it."""
    for _ in range(2):
        await nc.flush(timeout=math.ceil(seconds))


class LivePublisher:
    """A worker's side of the live channel: one NATS connection, and the items offered to it, sent in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._converter: DataConverter | None = None
        self._nc: Nats | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[LiveItem] = asyncio.Queue(QUEUE_SIZE)
        self._sender: asyncio.Task[None] | None = None
        self._failing = False  # a send failed: logged once until one succeeds again

    async def start(self, converter: DataConverter) -> None:
        """Connect (in the background: a worker whose NATS is away still runs tasks) and send what is offered."""
        self._converter = converter
        self._loop = asyncio.get_running_loop()
        self._sender = asyncio.create_task(self._run(), name="live-publisher")

    async def _run(self) -> None:
        wait = 0.5
        while self._nc is None:
            try:
                self._nc = await connect(self.url, "orchestrator-worker")
            except Exception as exc:
                self._warn(f"cannot connect to NATS at {self.url}: {exc}; live output waits for it")
                await asyncio.sleep(wait)
                wait = min(wait * 2, 10.0)
        while True:
            await self.publish(await self._queue.get())

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def offer(self, item: LiveItem) -> None:
        """Queue an item to send; safe from any thread (workflow code runs in the worker's workflow threads)."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the worker's loop has closed: nobody is left to send it
            self._loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: LiveItem) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._warn(f"live channel: {QUEUE_SIZE} items unsent; dropping (watchers read them from the stream)")

    async def publish(self, item: LiveItem) -> None:
        """Send one item now (on the worker's loop). Never raises: live output is best effort."""
        if self._nc is None or self._converter is None:
            return
        try:
            converter = converter_for(self._converter, item.namespace, item.workflow_id)
            [payload] = await converter.encode([item.value])
            headers = {TOPIC_HEADER: item.topic}
            if item.offset is not None:
                headers[OFFSET_HEADER] = str(item.offset)
            await self._nc.publish(
                subject(item.namespace, item.workflow_id), payload.SerializeToString(), headers=headers
            )
        except Exception as exc:
            self._warn(f"live output of {item.workflow_id} not sent: {type(exc).__name__}: {exc}")
            return
        self._failing = False

    @contextlib.asynccontextmanager
    async def watching(self, namespace: str, workflow_id: str) -> AsyncIterator[asyncio.Event]:
        """An event that is set while a gateway watches the task: at once when one answers the question (asked
        here: a NATS round trip, ~1 ms), later when one announces it started. Set when that cannot be told (no
        connection yet, no answer within ASK_TIMEOUT)."""
        watched = asyncio.Event()
        if self._nc is None:
            watched.set()
            yield watched
            return

        async def started(_: Msg) -> None:
            watched.set()

        # Listening before asking (one connection keeps the order): a feed that starts after the answer is heard.
        sub = await self._nc.subscribe(subject(namespace, workflow_id, STARTED_PREFIX), cb=started)
        try:
            where = subject(namespace, workflow_id, ASK_PREFIX)
            try:
                await self._nc.request(where, b"", timeout=ASK_TIMEOUT)
                watched.set()
            except NoRespondersError:
                pass
            except Exception as exc:
                watched.set()
                self._warn(f"cannot tell whether anyone watches ({where}): {type(exc).__name__}: {exc}")
            yield watched
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _warn(self, message: str) -> None:
        if not self._failing:
            self._failing = True
            logger.warning(message)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        self._loop = None


# The publishers of the workers running in this process, by (namespace, task queue): workflow code finds its own
# with `publisher_for` (this module is passed through the workflow sandbox, so there is one registry).
_publishers: dict[tuple[str, str], LivePublisher] = {}


@contextlib.contextmanager
def registered(namespace: str, task_queue: str, publisher: LivePublisher) -> Iterator[None]:
    key = (namespace, task_queue)
    _publishers[key] = publisher
    try:
        yield
    finally:
        if _publishers.get(key) is publisher:
            del _publishers[key]


def publisher_for(namespace: str, task_queue: str) -> LivePublisher | None:
    return _publishers.get((namespace, task_queue))
