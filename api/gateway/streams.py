"""Push, not poll: one subscription per watched task, fanned out to every SSE client watching it.

The workflow publishes each `TaskEvent` on its `WorkflowStream` (topic `events`); a `Feed` holds one
subscription per task however many clients watch it through this gateway: with the live channel (`NATS_URL`,
api/gateway/live.py) a NATS subscription, which costs no Temporal call per batch; without it a
`WorkflowStreamClient.subscribe` (a long-poll update the workflow answers when something is published).
Each client has a bounded queue: one that stops reading is dropped once it is `queue_size` events behind (it
resumes with Last-Event-ID), and a client that disconnects leaves at once; the subscription ends when the last
client leaves or the workflow closes.

A client first catches up with one query (`catch_up`: the stream's retained items after its position, and the
task's status), then joins the feed from where that read stopped; items are identified by their stream offset, so
none is sent twice and none is skipped (a `gap` says when the workflow's retention dropped some).

The SSE protocol (`StreamHub.events`): a client's events are numbered by stream offset (`id:` = offset + 1, what
Last-Event-ID resumes from); the gateway's own events (`GATEWAY_EVENTS`) carry no id. A stream ends with `end` (the
task's state) when the task stops for feedback or ends, `error` when the client fell too far behind or the task
could not be read, `timeout` at the gateway's time limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sse_starlette import ServerSentEvent
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient, WorkflowStreamItem
from temporalio.service import RPCError

from api.errors import ErrorOut
from api.gateway.poll_ids import with_poll_ids
from workflows.coding_task import CodingTask
from workflows.models import (
    STREAM_END_STATUSES,
    STREAM_TOPICS,
    EventsQueryInput,
    EventType,
    TaskEvent,
    TaskState,
    TaskStatus,
)

from .models import StreamGap
from .state import read_state, task_handle

logger = logging.getLogger(__name__)

POLL_QUERY = "__temporal_workflow_stream_poll"  # the stream's immediate read (WorkflowStream registers it)
RECENT_ITEMS = 256  # a feed keeps its last items for the clients joining it after their catch-up read
STOP_GRACE = 0.3  # seconds a live feed's stop at `awaiting_feedback` waits for a later status (Feed.end_state)
GATEWAY_EVENTS = ("session", "end", "gap", "error", "timeout")  # the workflow's own events have other types
NO_EVENTS = 2**53  # `events` query position past any event: it answers the task status only

Item = WorkflowStreamItem[TaskEvent]


@dataclass(frozen=True)
class LiveDelta:
    """An `llm_delta` a model call sent on the live channel: not on the stream, so it has no offset (and no SSE id)."""

    event: TaskEvent

    @functools.cached_property
    def rendered(self) -> bytes:
        """Its SSE event, encoded once for every client of the feed."""
        return sse(self.event.type, self.event.model_dump_json()).encode()


class LiveSubscription(Protocol):
    """A task's subscription on the live channel, made before the catch-up read its feed starts from."""

    def items(self, start: int, long_poll: Callable[[int], AsyncIterator[Item]]) -> AsyncIterator[Item | LiveDelta]: ...

    async def close(self) -> None: ...


class LiveSource(Protocol):
    """Where a feed reads a task from when the gateway has the live channel (api/gateway/live.py)."""

    async def subscribe(self, client: Client, session_id: str) -> LiveSubscription: ...


@dataclass
class Closed:
    """The last thing a client's queue holds: why its stream ends (`error` None: the workflow closed)."""

    error: str | None = None


@dataclass
class Catchup:
    """What a client reads before it joins the feed: the retained items after its position, up to `next_offset`."""

    items: list[Item]
    next_offset: int
    task_status: TaskStatus

    @property
    def last_status(self) -> TaskStatus:
        """The task's status once these items are read: the last `status` event's, else the one read with them."""
        return last_status(self.items) or self.task_status


def last_status(items: list[Item]) -> TaskStatus | None:
    """The status the last `status` event among `items` gives, None when there is none."""
    return next((s for s in map(status_of, reversed(items)) if s is not None), None)


def status_of(item: Item) -> TaskStatus | None:
    event = item.data
    if event.type == EventType.STATUS and "task_status" in event.data:
        return TaskStatus(event.data["task_status"])
    return None


def sse(kind: str, data: str, event_id: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(data=data, event=kind, id=None if event_id is None else str(event_id))


def numbered(item: Item) -> bytes:
    """The item's SSE event, encoded: its `TaskEvent` with the id its offset gives (offset + 1)."""
    event = item.data.model_copy(update={"id": item.offset + 1})
    return sse(event.type, event.model_dump_json(), event.id).encode()


def _error(detail: str) -> str:
    return ErrorOut(detail=detail).model_dump_json(exclude_none=True)


@dataclass
class Place:
    """Where one SSE client is in a task's stream: what it caught up on, its place on the feed (None when the task
    had stopped: nothing more comes), the offset of the next event it should see, and whether it wants the
    `llm_delta` events."""

    session_id: str
    catchup: Catchup
    joined: tuple[Feed, Watcher] | None
    expected: int
    deltas: bool = True
    task_status: TaskStatus = field(init=False)

    def __post_init__(self) -> None:
        self.task_status = self.catchup.task_status

    @property
    def stopped(self) -> bool:
        return self.task_status in STREAM_END_STATUSES

    def send(self, item: Item | LiveDelta) -> list[bytes]:
        """The SSE events of one stream item for this client, encoded: none when it had it, a `gap` before it when
        items between were dropped, the event itself (numbered) unless it is a delta the client does not want."""
        if isinstance(item, LiveDelta):
            return [item.rendered] if self.deltas else []
        if item.offset < self.expected:  # read by the catch-up already
            return []
        out = []
        if item.offset > self.expected:
            gap = StreamGap(missed_from=self.expected + 1, missed_to=item.offset)
            out.append(sse("gap", gap.model_dump_json()).encode())
        self.expected = item.offset + 1
        self.task_status = status_of(item) or self.task_status
        if self.deltas or item.data.type != EventType.LLM_DELTA:
            out.append(self.joined[0].rendered(item) if self.joined else numbered(item))
        return out


async def _end(state: Awaitable[TaskState]) -> ServerSentEvent:
    try:
        return sse("end", (await state).model_dump_json())
    except (RPCError, WorkflowQueryFailedError) as exc:
        return sse("error", _error(f"cannot read the task's state: {exc}; reconnect to resume"))


def _decode(client: Client, result: PollResult) -> list[Item]:
    converter = client.data_converter.payload_converter
    items = []
    for wire in result.items:
        payload = Payload.FromString(base64.b64decode(wire.data))  # the stream's wire form of an item
        items.append(Item(topic=wire.topic, data=converter.from_payload(payload, TaskEvent), offset=wire.offset))
    return items


async def read_stream(client: Client, session_id: str, after: int, rpc_timeout: timedelta) -> tuple[list[Item], int]:
    """The stream's retained items from offset `after` on, and the offset after the last (queries: no workflow
    task is added). Raises ValueError when `after` is beyond the stream's end."""
    handle = task_handle(client, session_id)
    items: list[Item] = []
    offset = after
    while True:
        result = await handle.query(
            POLL_QUERY,
            PollInput(topics=STREAM_TOPICS, from_offset=offset),
            result_type=PollResult,
            rpc_timeout=rpc_timeout,
        )
        if offset > result.next_offset:
            raise ValueError(f"the task's last event has id {result.next_offset}")
        items += _decode(client, result)
        offset = result.next_offset
        if not result.more_ready:
            return items, offset


async def catch_up(client: Client, session_id: str, after: int, rpc_timeout: timedelta) -> Catchup:
    """The stream's retained items from offset `after` (id `after` + 1) on, and the task's status.

    From the start, the items hold the task's `status` events, and the last one is its status: one query. Else
    (a client resuming, or a task too young to have one) the status is read first: when it says the task stopped,
    the items read after it hold every event up to the stop. Raises ValueError when `after` is beyond the
    stream's end."""
    if after == 0:
        items, offset = await read_stream(client, session_id, after, rpc_timeout)
        status = last_status(items)
        if status is not None:
            return Catchup(items=items, next_offset=offset, task_status=status)
    page = await task_handle(client, session_id).query(
        CodingTask.events, EventsQueryInput(after=NO_EVENTS), rpc_timeout=rpc_timeout
    )
    items, offset = await read_stream(client, session_id, after, rpc_timeout)
    return Catchup(items=items, next_offset=offset, task_status=page.task_status)


@dataclass(eq=False)
class Watcher:
    """One SSE client of a feed: its bounded queue (one slot more, kept for the `Closed` that ends it)."""

    queue_size: int
    queue: asyncio.Queue[Item | LiveDelta | Closed] = field(init=False)
    dropped: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size + 1)

    def offer(self, item: Item | LiveDelta) -> bool:
        """Queue the item; False (and the client is told why) when it is `queue_size` items behind."""
        if self.queue.qsize() >= self.queue_size:
            self.dropped = True
            behind = f"client too slow: more than {self.queue_size} events behind; reconnect with Last-Event-ID"
            self.close(Closed(behind))
            return False
        self.queue.put_nowait(item)
        return True

    def close(self, closed: Closed) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(closed)


class Feed:
    """The one subscription of a task's stream in this gateway, and the clients it feeds."""

    def __init__(
        self, hub: StreamHub, client: Client, session_id: str, catchup: Catchup, subscription: LiveSubscription | None
    ) -> None:
        self.hub = hub
        self.subscription = subscription
        self.session_id = session_id
        self.watchers: set[Watcher] = set()
        self.recent: deque[Item] = deque(catchup.items, maxlen=RECENT_ITEMS)  # what the next clients catch up from
        self.position = catchup.next_offset  # the offset of the next item it will receive
        self.task_status = catchup.last_status
        self._end_states: dict[int, asyncio.Task[TaskState]] = {}
        self._made: dict[int, tuple[Item, bytes]] = {}  # `rendered` by offset, oldest first
        self._status_seen = asyncio.Event()  # set (and replaced) when an item brings a status
        self._client = client
        self._task = asyncio.create_task(self._run(catchup.next_offset), name=f"stream feed {session_id}")

    async def _run(self, start: int) -> None:
        closed = Closed()
        try:
            async for item in self._items(start):
                if not isinstance(item, LiveDelta):
                    self.recent.append(item)
                    self.position = item.offset + 1
                    if (status := status_of(item)) is not None:
                        self.task_status = status
                        self._status_seen.set()
                        self._status_seen = asyncio.Event()
                for watcher in list(self.watchers):
                    if not watcher.offer(item):
                        self.watchers.discard(watcher)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an RPC error, a query that failed, a payload that does not decode: say so
            logger.warning("event stream of %s stopped: %s", self.session_id, exc)
            closed = Closed(f"cannot read the task's events: {exc}; reconnect to resume")
        finally:
            self.hub.forget(self)
        for watcher in self.watchers:
            watcher.close(closed)

    def _items(self, start: int) -> AsyncIterator[Item | LiveDelta]:
        """The task's items from `start` on: from the live channel when the feed has a subscription there, else by
        long-polling the workflow stream (an update and a workflow task per batch)."""
        if self.subscription is not None:
            return self.subscription.items(start, self._long_poll)
        return self._long_poll(start)

    def _long_poll(self, start: int) -> AsyncIterator[Item]:
        stream = WorkflowStreamClient.create(with_poll_ids(self._client), self.session_id)
        cooldown = timedelta(seconds=self.hub.poll_cooldown)
        return stream.subscribe(STREAM_TOPICS, start, result_type=TaskEvent, poll_cooldown=cooldown)

    def rendered(self, item: Item) -> bytes:
        """The item's SSE event (`numbered`), encoded once for all the feed's clients (the same item object only)."""
        made = self._made.get(item.offset)
        if made is None or made[0] is not item:
            made = self._made[item.offset] = (item, numbered(item))
            if len(self._made) > RECENT_ITEMS:
                del self._made[next(iter(self._made))]
        return made[1]

    def join(self, watcher: Watcher, offset: int) -> None:
        """Add a client that has read everything before `offset`: it gets the recent items from there on."""
        for item in self.recent:
            if item.offset >= offset:
                watcher.offer(item)
        self.watchers.add(watcher)

    def end_state(self, offset: int, task_status: TaskStatus) -> asyncio.Task[TaskState]:
        """The task state once the stream reached `offset` and the task stopped (at `task_status`): one read for
        all its clients."""
        if offset not in self._end_states:
            self._end_states[offset] = asyncio.ensure_future(self._state_at_stop(task_status))
        return self._end_states[offset]

    async def _state_at_stop(self, task_status: TaskStatus) -> TaskState:
        """Over the live channel a workflow task's items arrive while it runs. A task with no feedback window sends
        `awaiting_feedback` and its completion from one workflow task, so a stop at `awaiting_feedback` waits up to
        STOP_GRACE for a later status first: once completed, the state is its result. A `status` query reaching the
        run as that workflow task closes it would be answered by a worker replaying the whole run."""
        if self.subscription is not None and task_status == TaskStatus.AWAITING_FEEDBACK:
            if self.task_status == task_status:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._status_seen.wait(), STOP_GRACE)
            task_status = self.task_status
        handle = task_handle(self._client, self.session_id)
        return await read_state(handle, task_status == TaskStatus.COMPLETED, timedelta(seconds=self.hub.rpc_timeout))

    def stop(self) -> None:
        self._task.cancel()


class StreamHub:
    """The gateway's feeds, by session id (`app.state.streams`)."""

    def __init__(self, queue_size: int, poll_cooldown: float, rpc_timeout: float, max_seconds: float) -> None:
        self.queue_size = queue_size
        self.live: LiveSource | None = None  # the live channel, when the gateway has one (set as it starts)
        self.poll_cooldown = poll_cooldown
        self.rpc_timeout = rpc_timeout
        self.max_seconds = max_seconds  # one stream's time limit
        self._feeds: dict[str, Feed] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def catching_up(self, session_id: str) -> AsyncIterator[None]:
        """One client of a task catches up at a time, so clients arriving together make one read, not one each."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(session_id) is lock:
                del self._locks[session_id]

    def cached(self, session_id: str, after: int) -> Catchup | None:
        """The catch-up from the task's feed, when it has one that still holds every item after `after`."""
        feed = self._feeds.get(session_id)
        if feed is None or after > feed.position or after < (feed.recent[0].offset if feed.recent else feed.position):
            return None
        items = [item for item in feed.recent if item.offset >= after]
        return Catchup(items=items, next_offset=feed.position, task_status=feed.task_status)

    def watchers(self, session_id: str) -> int:
        """How many clients watch the task through this gateway (0: no subscription is held)."""
        feed = self._feeds.get(session_id)
        return len(feed.watchers) if feed else 0

    @property
    def subscriptions(self) -> int:
        return len(self._feeds)

    @contextlib.asynccontextmanager
    async def subscribed(self, client: Client, session_id: str) -> AsyncIterator[LiveSubscription | None]:
        """The task's subscription on the live channel (None without one), for a catch-up read inside this block
        and the feed `join` starts after it; closed on the way out unless that feed took it."""
        if self.live is None:
            yield None
            return
        subscription = await self.live.subscribe(client, session_id)
        try:
            yield subscription
        finally:
            feed = self._feeds.get(session_id)
            if feed is None or feed.subscription is not subscription:
                await subscription.close()

    def join(
        self, client: Client, session_id: str, catchup: Catchup, subscription: LiveSubscription | None = None
    ) -> tuple[Feed, Watcher]:
        """Watch the task after the catch-up, through its feed (started now if it has none, on `subscription`)."""
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = Feed(self, client, session_id, catchup, subscription)
        watcher = Watcher(self.queue_size)
        feed.join(watcher, catchup.next_offset)
        return feed, watcher

    def leave(self, feed: Feed, watcher: Watcher) -> None:
        """A client left (it disconnected, was dropped, or its stream ended): the last one ends the subscription."""
        feed.watchers.discard(watcher)
        if not feed.watchers and self._feeds.get(feed.session_id) is feed:
            del self._feeds[feed.session_id]
            feed.stop()

    async def events(
        self, client: Client, place: Place, first: ServerSentEvent | None = None
    ) -> AsyncIterator[ServerSentEvent | bytes]:
        """`first`, the caught-up events, then those the task's feed pushes, each once, until the task stops for
        feedback or ends (`end`), the client falls too far behind (`error`), or the time limit (`timeout`). The
        events of items that arrived together go in one write."""
        if first is not None:
            yield first
        try:
            if caught_up := b"".join(event for item in place.catchup.items for event in place.send(item)):
                yield caught_up
            if place.joined is None:  # the task had stopped: nothing more comes
                handle = task_handle(client, place.session_id)
                completed = place.task_status == TaskStatus.COMPLETED
                yield await _end(read_state(handle, completed, timedelta(seconds=self.rpc_timeout)))
                return
        except BaseException:
            if place.joined is not None:
                self.leave(*place.joined)
            raise
        feed, watcher = place.joined
        try:
            async with asyncio.timeout(self.max_seconds):
                while True:
                    got = await watcher.queue.get()
                    batch = [got]
                    while not watcher.queue.empty():  # a poll's items arrive together: send them all, then judge
                        batch.append(watcher.queue.get_nowait())
                    events: list[bytes] = []
                    closed = None
                    for got in batch:
                        if isinstance(got, Closed):
                            closed = got
                            break
                        events += place.send(got)
                    if events:
                        yield b"".join(events)
                    if closed is not None:
                        if closed.error is not None:
                            yield sse("error", _error(closed.error))
                        else:  # the workflow closed (e.g. terminated): no event says so
                            yield await _end(feed.end_state(place.expected, place.task_status))
                        return
                    if place.stopped:
                        yield await _end(feed.end_state(place.expected, place.task_status))
                        return
        except TimeoutError:
            yield sse("timeout", _error("stream time limit reached; reconnect with Last-Event-ID"))
        finally:
            self.leave(feed, watcher)

    def forget(self, feed: Feed) -> None:
        if self._feeds.get(feed.session_id) is feed:
            del self._feeds[feed.session_id]

    async def close(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        for feed in feeds:
            feed.stop()
        await asyncio.gather(*(feed._task for feed in feeds), return_exceptions=True)
