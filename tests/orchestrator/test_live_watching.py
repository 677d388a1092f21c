"""A model call's text goes on the live channel only while a gateway watches its task: a real nats-server, the
worker's `LivePublisher` and the call's `DeltaPublisher`; the gateway's part (answering the question, announcing a
feed) is played here on a NATS connection of its own, as api/gateway/live.py does it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from temporalio.api.common.v1 import Payload
from temporalio.testing import ActivityEnvironment

from activities.deltas import TICKER_NAME, DeltaPublisher
from orchestrator.live import (
    ASK_PREFIX,
    OFFSET_HEADER,
    STARTED_PREFIX,
    LivePublisher,
    converter_for,
    flushed,
    subject,
)
from orchestrator.temporal import data_converter
from tests.support import wait_until
from workflows.models import AgentRole, LlmRequest, TaskEvent

ENV = ActivityEnvironment()
TASK = ENV.info.workflow_id or ""
NAMESPACE = ENV.info.namespace
PIECES = [f"piece {i}. " for i in range(12)]


@pytest.fixture
async def publisher(nats_url: str) -> AsyncIterator[LivePublisher]:
    live = LivePublisher(nats_url)
    await live.start(data_converter())
    try:
        await wait_until(lambda: live.connected, within=10)  # in the background, as the worker's connects
        yield live
    finally:
        await live.aclose()


@pytest.fixture
async def gateway(nats_url: str) -> AsyncIterator[Nats]:
    nc = await nats.connect(nats_url)
    try:
        yield nc
    finally:
        await nc.close()


async def watch(gateway: Nats) -> None:
    """What a gateway feed does as it starts: answer the task's question, then say it started."""

    async def answer(msg: Msg) -> None:
        await msg.respond(b"")

    await gateway.subscribe(subject(NAMESPACE, TASK, ASK_PREFIX), cb=answer)
    await flushed(gateway)
    await gateway.publish(subject(NAMESPACE, TASK, STARTED_PREFIX), b"")


async def call(live: LivePublisher, halfway: asyncio.Event | None = None, until: asyncio.Event | None = None) -> int:
    """A streamed call's text, 12 pieces 20 ms apart; `halfway` is set after 6, then it waits for `until`."""
    request = LlmRequest(role=AgentRole.CODE_GENERATION, system="s", messages=[])
    async with DeltaPublisher(request, timedelta(milliseconds=50), live) as deltas:
        for i, piece in enumerate(PIECES):
            if i == 6 and halfway is not None and until is not None:
                halfway.set()
                await until.wait()
            deltas.add(piece)
            await asyncio.sleep(0.02)
    return deltas.published


async def texts(messages: list[Msg]) -> list[str]:
    converter = converter_for(data_converter(), NAMESPACE, TASK)
    assert not [m for m in messages if OFFSET_HEADER in (m.headers or {})]
    events = await converter.decode([Payload.FromString(m.data) for m in messages], [TaskEvent] * len(messages))
    return [e.data["text"] for e in events]


async def reading(gateway: Nats) -> Subscription:
    """A reader of the task's live output, in place on the server when this returns."""
    sub = await gateway.subscribe(subject(NAMESPACE, TASK))
    await flushed(gateway)
    return sub


async def received(sub: Subscription, count: int) -> list[Msg]:
    """The next `count` messages, and one more if it comes within 0.3 s (there should be none)."""
    messages = [await sub.next_msg(timeout=10) for _ in range(count)]
    with contextlib.suppress(nats.errors.TimeoutError):
        messages.append(await sub.next_msg(timeout=0.3))
    return messages


async def test_a_call_nobody_watches_sends_nothing(publisher: LivePublisher, gateway: Nats) -> None:
    sub = await reading(gateway)  # a reader of the subject, not a watching feed
    assert await ENV.run(call, publisher) == 0
    assert await received(sub, 0) == []


async def test_a_call_watched_from_its_start_sends_its_text_in_batches(publisher: LivePublisher, gateway: Nats) -> None:
    await watch(gateway)
    sub = await reading(gateway)
    published = await ENV.run(call, publisher)
    got = await texts(await received(sub, published))
    assert published == len(got) > 1
    assert "".join(got) == "".join(PIECES)


async def test_a_feed_that_starts_mid_call_gets_the_text_from_its_start(
    publisher: LivePublisher, gateway: Nats
) -> None:
    sub = await reading(gateway)
    halfway, go_on = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(ENV.run(call, publisher, halfway, go_on))
    await halfway.wait()
    await asyncio.sleep(0.2)  # four batch intervals, unwatched: nothing is sent
    assert await received(sub, 0) == []
    await watch(gateway)
    go_on.set()
    got = await texts(await received(sub, await running))
    assert got and got[0].startswith("".join(PIECES[:6]))  # what was gathered before the feed came, at once
    assert "".join(got) == "".join(PIECES)


async def test_a_call_whose_question_gets_no_answer_counts_as_watched(publisher: LivePublisher, gateway: Nats) -> None:
    """A subscriber of the question subject that never answers (not a gateway feed): after ASK_TIMEOUT the call
    cannot tell, and sends its text as a watched call does."""
    await gateway.subscribe(subject(NAMESPACE, TASK, ASK_PREFIX))  # hears the question, never answers it
    sub = await reading(gateway)
    published = await ENV.run(call, publisher)
    assert published > 0
    assert "".join(await texts(await received(sub, published))) == "".join(PIECES)


def ticker_timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The timers of a call's batch sender (`TICKER_NAME`) that fire, each a wake-up of the worker's event loop of
    its own (the list fills as they fire). A timer cancelled before its time costs no wake-up."""
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Callable[..., object], *args: object, **kwargs: Any) -> asyncio.TimerHandle:
        task = asyncio.current_task()
        if task is None or task.get_name() != TICKER_NAME:
            return call_at(when, callback, *args, **kwargs)

        def fire(*args: object) -> None:
            fired.append(when)
            callback(*args)

        return call_at(when, fire, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    return fired


async def test_a_watched_call_that_writes_nothing_for_a_while_does_not_wake_every_interval(
    publisher: LivePublisher, gateway: Nats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply that comes whole at the end of its call (or a tool-call turn, which writes no text) costs no wake-up
    an interval while it is silent: the call waits for text, and only then for its interval."""

    async def silent_then_whole(live: LivePublisher) -> int:
        request = LlmRequest(role=AgentRole.CODE_GENERATION, system="s", messages=[])
        async with DeltaPublisher(request, timedelta(milliseconds=50), live) as deltas:
            await asyncio.sleep(0.5)  # ten intervals without text
            deltas.add("the whole reply")
        return deltas.published

    await watch(gateway)
    sub = await reading(gateway)
    fired = ticker_timers(monkeypatch)
    assert await ENV.run(silent_then_whole, publisher) == 1
    assert await texts(await received(sub, 1)) == ["the whole reply"]
    assert fired == []


async def test_a_watched_call_streaming_steadily_sends_each_batch_from_a_chunk_not_a_timer(
    publisher: LivePublisher, gateway: Nats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a batch's interval has passed, the next chunk's text lets it go, in the wake-up that chunk makes: a
    steady stream costs no timer wake-up a batch (a timer half an interval later sends the text of a stream that
    pauses)."""
    pieces = [f"{i} " for i in range(40)]

    async def steady(live: LivePublisher) -> int:
        request = LlmRequest(role=AgentRole.CODE_GENERATION, system="s", messages=[])
        async with DeltaPublisher(request, timedelta(milliseconds=100), live) as deltas:
            for piece in pieces:
                deltas.add(piece)
                await asyncio.sleep(0.01)
        return deltas.published

    await watch(gateway)
    sub = await reading(gateway)
    fired = ticker_timers(monkeypatch)
    published = await ENV.run(steady, publisher)
    assert published >= 3
    assert "".join(await texts(await received(sub, published))) == "".join(pieces)
    assert len(fired) <= 1, fired  # one may, on a machine slow enough to leave 50 ms between two chunks
