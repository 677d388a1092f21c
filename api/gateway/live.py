"""A watched task read from the live channel (`NATS_URL`, orchestrator/live.py): no Temporal call per batch.

A feed subscribes to the task's subject before its catch-up read (so nothing sent after that read is missed), and
passes on what the workers send: the stream's items in offset order, each once, and the `llm_delta` text model calls
send (`LiveDelta`). Core NATS keeps nothing and may lose a message
(a worker that stopped before sending, a reconnect), so the workflow stream stays the record: when a message skips
an offset, the feed reads the stream from its position with one query. When the task has sent nothing for QUIET
seconds (doubling up to QUIET_MAX while it stays quiet) the feed reads the stream too: a workflow that has closed
ends the feed once everything is read, and items that only the stream had mean the task's worker does not send
on the channel (one without NATS_URL, or an older one), so the feed follows the task by long-poll from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus

from orchestrator.live import (
    ASK_PREFIX,
    OFFSET_HEADER,
    STARTED_PREFIX,
    TOPIC_HEADER,
    connect,
    converter_for,
    flushed,
    subject,
)
from workflows.models import TaskEvent

from .streams import Item, LiveDelta, read_stream

logger = logging.getLogger(__name__)

QUIET = 5.0  # seconds without a message before the feed reads the stream itself
QUIET_MAX = 30.0  # the wait doubles while the task stays quiet (e.g. waiting for feedback), up to this
PENDING_LIMIT = 65_536  # messages a feed holds unread before it drops them (read back from the stream)


class LiveChannel:
    """The gateway's NATS connection (`app.state.streams.live`): one subscription per watched task."""

    def __init__(self, nc: Nats, rpc_timeout: float) -> None:
        self.nc = nc
        self.rpc_timeout = timedelta(seconds=rpc_timeout)

    @classmethod
    async def open(cls, url: str, rpc_timeout: float) -> LiveChannel | None:
        """Connected, or None (logged) when NATS cannot be reached: watchers then long-poll the workflow stream."""
        try:
            return cls(await connect(url, "orchestrator-gateway"), rpc_timeout)
        except Exception as exc:
            logger.warning("cannot connect to NATS at %s (%s): watchers read the workflow stream instead", url, exc)
            return None

    async def close(self) -> None:
        await self.nc.drain()

    async def subscribe(self, client: Client, session_id: str) -> Subscription:
        """The task's subscription, in place on the NATS server when this returns: opened before the feed's catch-up
        read, a message the task sends after that read is never missed. It also answers the task's model calls
        that ask whether anyone watches, and tells the calls already running (they then send their text)."""
        namespace = client.namespace
        subscription = Subscription(client, session_id, self.rpc_timeout)

        async def answer(msg: Msg) -> None:
            with contextlib.suppress(Exception):  # the asker may have gone
                await msg.respond(b"")

        try:
            subscription.output = await self.nc.subscribe(subject(namespace, session_id), cb=subscription.received)
            subscription.question = await self.nc.subscribe(subject(namespace, session_id, ASK_PREFIX), cb=answer)
            await flushed(self.nc, self.rpc_timeout.total_seconds())  # the server has them
            await self.nc.publish(subject(namespace, session_id, STARTED_PREFIX), b"")
        except BaseException:
            await subscription.close()
            raise
        return subscription


class Subscription:
    """One watched task's NATS subscriptions (its output, and the question its model calls ask), read by its feed
    (`items`), or closed unused. A message waits in a queue of PENDING_LIMIT; beyond it, it is dropped, and the
    feed reads it back from the stream."""

    def __init__(self, client: Client, session_id: str, rpc_timeout: timedelta) -> None:
        self.client = client
        self.session_id = session_id
        self.rpc_timeout = rpc_timeout
        self.closed = False
        self.dropped = 0  # messages that found the queue full (the feed reads them back from the stream)
        self.output: NatsSubscription | None = None
        self.question: NatsSubscription | None = None
        self._messages: asyncio.Queue[Msg] = asyncio.Queue(PENDING_LIMIT)

    async def received(self, msg: Msg) -> None:
        """The subscription's callback: a queue put, and no task for each message as `next_msg` makes."""
        try:
            self._messages.put_nowait(msg)
        except asyncio.QueueFull:
            if not self.dropped:
                logger.warning("live channel: %s has %d messages unread; dropping", self.session_id, PENDING_LIMIT)
            self.dropped += 1

    async def close(self) -> None:
        self.closed = True
        for sub in (self.output, self.question):
            if sub is not None:
                with contextlib.suppress(Exception):  # the connection may be closing with the gateway
                    await sub.unsubscribe()

    async def _next(self, seconds: float) -> Msg | None:
        """The next message, None after `seconds` without one."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                return await self._messages.get()
        return None

    async def items(
        self, start: int, long_poll: Callable[[int], AsyncIterator[Item]]
    ) -> AsyncIterator[Item | LiveDelta]:
        """The task's items from offset `start` on, in order and each once, and its calls' text; ends when the
        workflow has closed and every item was passed on. `long_poll(offset)`: the items from the stream's
        long-poll, for a task whose worker does not send on the channel."""
        client, session_id = self.client, self.session_id
        converter = converter_for(client.data_converter, client.namespace, session_id)
        position = start
        quiet = QUIET
        undecodable = 0
        try:
            while True:
                msg = await self._next(quiet)
                if msg is None:
                    quiet = min(quiet * 2, QUIET_MAX)
                    closed = await self._closed()
                    items, position = await self._read(position)
                    for item in items:
                        yield item
                    if closed:
                        return
                    if items:
                        logger.info(
                            "%s: its worker sends nothing on the live channel; following it by long-poll", session_id
                        )
                        async for item in long_poll(position):
                            yield item
                        return
                    continue
                quiet = QUIET
                headers = msg.headers or {}
                try:
                    [event] = await converter.decode([Payload.FromString(msg.data)], [TaskEvent])
                    offset = int(headers[OFFSET_HEADER]) if OFFSET_HEADER in headers else None
                except Exception as exc:  # not a worker's message: ignored (the stream has every real item)
                    if not undecodable:  # once a feed: whoever sends them does not fill the log
                        logger.warning("live channel: a message for %s that does not decode: %s", session_id, exc)
                    undecodable += 1
                    continue
                if offset is None:
                    yield LiveDelta(event)
                    continue
                if offset > position:  # messages were lost: the stream has them
                    items, position = await self._read(position)
                    for item in items:
                        yield item
                # Passed on already (below), or an offset the stream does not reach (not there yet, or a message
                # no worker sent): left to the stream, so the feed's position only moves by what the task holds.
                if offset == position:
                    yield Item(topic=headers.get(TOPIC_HEADER, ""), data=event, offset=offset)
                    position = offset + 1
        finally:
            await self.close()

    async def _read(self, position: int) -> tuple[list[Item], int]:
        """The stream's items from `position` on. A position past the stream's end (items sent by a workflow task
        that has not completed: its retry sends them again) reads nothing yet."""
        try:
            return await read_stream(self.client, self.session_id, position, self.rpc_timeout)
        except ValueError:
            return [], position

    async def _closed(self) -> bool:
        """The task's workflow has closed (a run continued as new is not: the next run goes on)."""
        description = await self.client.get_workflow_handle(self.session_id).describe(rpc_timeout=self.rpc_timeout)
        return description.status not in (None, WorkflowExecutionStatus.RUNNING)
