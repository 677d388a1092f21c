"""Text a model is writing, as it is written: `llm_delta` events on the task's workflow stream.

The `llm_chat` activity passes every streamed chunk here. Text is gathered and published at most once every
`LLM_DELTA_INTERVAL_MS` (default 250 ms; 0 turns deltas off) as one `TaskEvent` of type `llm_delta` with
`data = {role, step, attempt, text}` on the stream topic `DELTA_TOPIC` (a long call's interval doubles after
every DOUBLE_EVERY events, which bounds what it adds to history), through
`temporalio.contrib.workflow_streams.WorkflowStreamClient` (a signal to the workflow per batch). `attempt` is the
activity's attempt: a retried call starts its text again under a higher attempt, so a reader drops what it had
of a lower one for the same role and step.

Only while someone watches: a call the workflow scheduled unwatched (`LlmRequest.deltas` False, workflows/watch.py)
gathers its text and reads the task's memo with `describe()` (a server read, about 2 ms of CPU: no history, no
workflow task) FIRST_LOOK after its first text, then at an interval doubling up to LAST_LOOK (a retried attempt,
whose input is as old as the first's, also at its start); when the memo's `watched_until` is later than now, it
publishes all it gathered as its first batch (a watcher who came mid-call sees the call's text from its start) and
goes on as a watched call. A call that ends unwatched publishes nothing: if a watcher came after its last look,
the workflow publishes its text itself with the reply (`Steps.llm`).

With the live channel (`NATS_URL`, orchestrator/live.py) a call publishes its batches there instead: no signal, no
memo look, nothing in history. It asks as it starts whether a gateway watches the task (`LivePublisher.watching`:
one NATS request, answered at once either way); unwatched, it gathers its text until a gateway says it started
watching, then publishes all of it as its first batch, as above, with no wait for a look.

Deltas are best effort: a publish that fails is logged and the rest of the call's deltas are dropped; a describe
that fails is logged once and tried again at the next look; the model call itself never fails because of them,
and the reply recorded in history is the same with or without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.live import LiveItem, LivePublisher
from workflows.events import delta_event
from workflows.models import DELTA_TOPIC, WATCHED_UNTIL_MEMO, AgentRole, LlmRequest, TaskEvent

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT = timedelta(seconds=2)  # the most the end of a call waits for its last deltas to be delivered
PUBLISH_RETRY = timedelta(seconds=10)  # how long one batch is retried before the call's deltas are given up
# A batch that failed with one of these is sent again with the next (the server or the connection was away).
RETRYABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED})
TICKER_NAME = "llm-delta-publisher"  # the task that sends a call's batches; it ends with the call
DOUBLE_EVERY = 40  # after this many events of one call its interval doubles (and again after as many more)
FIRST_LOOK = timedelta(seconds=2)  # an unwatched call reads the memo this long after its first text, then at
LAST_LOOK = timedelta(seconds=8)  # double the wait up to this: the longest a watcher who came mid-call waits


def wait_before(published: int, interval: timedelta) -> timedelta:
    """The wait before a call's next batch: `interval` for its first DOUBLE_EVERY events, then twice as long, and
    so on, so a long call's events (each a signal in the task's history) grow with the log of its length."""
    return interval * 2 ** min(published // DOUBLE_EVERY, 10)


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set, at most `seconds`; True if it is."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class DeltaPublisher:
    """Gathers one call's text chunks and publishes them in batches (an async context manager)."""

    def __init__(self, request: LlmRequest, interval: timedelta, live: LivePublisher | None = None) -> None:
        self.role: AgentRole = request.role
        self.step = request.step  # the workflow's number for the call, which its llm_call event carries too
        self.interval = interval
        self.attempt = 1
        self.published = 0  # events published
        self.watched = request.deltas  # publish from the start; False: only once the memo says someone watches
        self._pending: list[str] = []
        self._client: WorkflowStreamClient | None = None
        self._live = live
        self._live_target: tuple[str, str] | None = None  # (namespace, workflow id) when sending on the live channel
        self._live_events: list[TaskEvent] = []
        self._watch: asyncio.Event | None = None  # on the live channel: set while a gateway watches the task
        self._exits = contextlib.AsyncExitStack()
        self._handle: WorkflowHandle[object, object] | None = None
        self._describe_failed = False
        self._ticker: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._text = asyncio.Event()  # the call has written text, or ended
        self._go = asyncio.Event()  # a batch may go: text came once the interval had passed, or the call ended
        self._due = 0.0  # the event loop's time from which the next batch may go
        self._failed = False

    async def __aenter__(self) -> DeltaPublisher:
        if self.interval <= timedelta(0):
            return self
        try:
            info = activity.info()
            self.attempt = info.attempt
            # Not entered as a context manager, so the client's own background flusher never starts: this
            # publisher sends each batch itself. Cancelling that flusher at the end of a call, just after a forced
            # flush had woken it, is lost inside asyncio.wait_for on Python 3.11, and the end of every call then
            # waited out FLUSH_TIMEOUT (2 s). The handle names the run that made the call: once a reset replaced
            # that run, the batches fail instead of reaching the new run.
            if info.workflow_id is None:
                raise RuntimeError("a standalone activity: no workflow to publish to")
            if self._live is not None:
                self._live_target = (info.namespace, info.workflow_id)
                self._watch = await self._exits.enter_async_context(self._live.watching(*self._live_target))
                self.watched = self._watch.is_set()
                self._ticker = asyncio.create_task(self._tick(), name=TICKER_NAME)
                return self
            client = activity.client()
            self._handle = client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
            self._client = WorkflowStreamClient(self._handle, client=client, max_retry_duration=PUBLISH_RETRY)
        except Exception as exc:  # no workflow to publish to, or no client: the call goes on without deltas
            self._client = None
            self._give_up(exc)
            return self
        self._ticker = asyncio.create_task(self._tick(), name=TICKER_NAME)
        return self

    def add(self, text: str) -> None:
        """Take a chunk's text (the ChunkSink the providers call). A chunk that comes once the interval has passed
        lets the batch go in the wake-up the chunk makes anyway, with no timer of its own."""
        if text and (self._client is not None or self._live_target is not None) and not self._failed:
            self._pending.append(text)
            self._text.set()
            if asyncio.get_running_loop().time() >= self._due:
                self._go.set()

    def _publish(self) -> bool:
        """Buffer the text gathered since the last batch as one event; False if there was none."""
        if not self._pending or self._failed:
            return False
        text, self._pending = "".join(self._pending), []
        event = delta_event(datetime.now(UTC).isoformat(), self.role, self.step, self.attempt, text)
        if self._live_target is not None:
            self._live_events.append(event)
            self.published += 1
            return True
        if self._client is None:
            return False
        try:
            self._client.topic(DELTA_TOPIC, type=TaskEvent).publish(event)
        except Exception as exc:
            self._give_up(exc)
            return False
        self.published += 1
        return True

    async def _send(self, last: bool) -> None:
        """Signal what is buffered to the workflow. A batch that failed for a reason worth retrying stays with the
        client and goes with the next one (the client gives it up after PUBLISH_RETRY); any other failure, or any
        of the last batch, ends this call's deltas. On the live channel: sent now (a failure is logged there)."""
        if self._live is not None and self._live_target is not None:
            events, self._live_events = self._live_events, []
            for event in events:
                await self._live.publish(LiveItem(*self._live_target, DELTA_TOPIC, None, event))
            return
        assert self._client is not None
        try:
            await self._client.flush()
        except RPCError as exc:
            if last or exc.status not in RETRYABLE:
                self._give_up(exc)
        except Exception as exc:
            self._give_up(exc)

    async def _tick(self) -> None:
        """Unwatched: wait for a watcher. Then send the call's text as it comes, at most one batch an interval, and
        once the call has ended its last one. Text after a quiet spell goes at once (the first batch with all the
        text gathered before the watcher came); a call writing nothing (a tool-call turn, a reply that comes whole
        at its end) does not wake until it does."""
        if not self.watched:
            self.watched = await self._await_watcher()
            if not self.watched:
                return
        loop = asyncio.get_running_loop()
        while not self._failed:
            await self._text.wait()
            # A batch goes with a chunk that comes once the interval has passed, or at the end of the call; half
            # an interval past it without either, the text gathered goes anyway.
            await set_within(self._go, self._due - loop.time() + self.interval.total_seconds() / 2)
            self._text.clear()
            self._go.clear()
            last = self._ended.is_set()
            published = self._publish()
            # Before the send: a chunk that comes while it is on its way waits for the next interval.
            self._due = loop.time() + wait_before(self.published, self.interval).total_seconds()
            if published or last:  # the last round also sends a batch still held from a failed one
                await self._send(last)
            if last:
                return

    async def _await_watcher(self) -> bool:
        """True once the memo says someone watches (on the live channel: once a gateway says so), False when the
        call ended unwatched. Nothing is read before the call has text to show (tool-call turns write none)."""
        if self._watch is not None:
            return await self._first_of(self._watch)
        if self.attempt > 1 and await self._watcher_came():
            return True
        await self._text.wait()
        look = FIRST_LOOK
        while not await set_within(self._ended, look.total_seconds()):
            if await self._watcher_came():
                return True
            look = min(look * 2, LAST_LOOK)
        return False

    async def _first_of(self, watched: asyncio.Event) -> bool:
        """Wait until `watched` is set or the call ends; True if it was set."""
        waits = [asyncio.ensure_future(watched.wait()), asyncio.ensure_future(self._ended.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return watched.is_set()

    async def _watcher_came(self) -> bool:
        assert self._handle is not None
        try:
            description = await self._handle.describe()
            until = await description.memo_value(WATCHED_UNTIL_MEMO, None)
            return isinstance(until, str) and datetime.fromisoformat(until) > datetime.now(UTC)
        except Exception as exc:  # the next look tries again
            if not self._describe_failed:
                self._describe_failed = True
                logger.warning("cannot read whether %s step %d is watched: %s", self.role, self.step, exc)
            return False

    async def __aexit__(self, *_exc: object) -> None:
        async with self._exits:  # the watch question's subscription, on the live channel
            if self._ticker is None:
                return
            self._ended.set()
            self._text.set()
            self._go.set()
            try:  # the reply is kept whatever becomes of its deltas
                await asyncio.wait_for(self._ticker, FLUSH_TIMEOUT.total_seconds())
            except Exception as exc:
                self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        if not self._failed:
            logger.warning(
                "llm_delta events of %s step %d dropped: %s: %s", self.role, self.step, type(exc).__name__, exc
            )
        self._failed = True
