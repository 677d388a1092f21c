"""Watchers over the live channel (NATS_URL): a real nats-server, worker and gateway; no stream poll in history."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import uuid
from collections import Counter

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client
from temporalio.worker import Worker

from activities.config import WorkerSettings
from api.gateway.live import QUIET, LiveChannel, Subscription
from api.gateway.streams import POLL_QUERY, StreamHub
from orchestrator.codec import TENANT_METADATA, encrypting_for
from orchestrator.live import ASK_PREFIX, OFFSET_HEADER, converter_for, subject
from orchestrator.temporal import data_converter
from testbed.llm_server import FakeLlmServer
from testbed.nats import nats_server
from testbed.product import product_worker, start_task
from testbed.server import free_port
from tests.gateway.support import (
    ALICE,
    QUICK_TASK,
    Reader,
    SseEvent,
    counting_queries,
    live_server,
    make_app,
    numbered,
)
from tests.support import wait_until
from workflows.models import STATUS_QUERY, EventType, TaskEvent

POLL_UPDATE = "__temporal_workflow_stream_poll"
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"


def new_id() -> str:
    return f"live-{uuid.uuid4().hex[:12]}"


async def history_kinds(client: Client, session_id: str) -> Counter[str]:
    """The task's history events by type, updates and signals by name."""
    kinds: Counter[str] = Counter()
    async for event in client.get_workflow_handle(session_id).fetch_history_events():
        kind = HistoryEventType.Name(event.event_type)
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            kind = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            kind = event.workflow_execution_signaled_event_attributes.signal_name
        kinds[kind] += 1
    return kinds


async def watch_to_end(http: httpx.AsyncClient, session_id: str, query: str = "") -> list[SseEvent]:
    async with http.stream("GET", f"/events/{session_id}{query}", headers=ALICE) as response:
        assert response.status_code == 200
        return await Reader(response).until(lambda e: e.event in ("end", "error", "timeout"))


async def test_watchers_get_every_event_in_order_and_the_calls_text_with_no_stream_poll(
    client: Client, task_queue: str, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, nats_url: str
) -> None:
    fake_llm.hold_after = 1  # the planner answers, then the code agent's first call waits for the watchers
    session_id = new_id()
    app = make_app(task_queue, client, nats_url=nats_url)
    hub: StreamHub = app.state.streams
    settings = worker_settings.model_copy(update={"nats_url": nats_url})
    wire = await nats.connect(nats_url)
    raw = await wire.subscribe(subject(client.namespace, session_id))  # what goes over NATS, as anyone sees it
    async with product_worker(client, settings), live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert hub.live is not None
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        async with contextlib.AsyncExitStack() as stack:
            readers = {}
            for name, query in (("all", ""), ("steps", "?deltas=false")):
                response = await stack.enter_async_context(
                    http.stream("GET", f"/events/{session_id}{query}", headers=ALICE)
                )
                readers[name] = Reader(response)
            for reader in readers.values():
                await reader.until(lambda e: e.event == "plan")
            await wait_until(lambda: hub.watchers(session_id) == 2, within=5)
            assert hub.subscriptions == 1
            fake_llm.hold_after = None
            fake_llm.release()
            for reader in readers.values():
                await reader.until(lambda e: e.event in ("end", "error", "timeout"))
        later = await watch_to_end(http, session_id)  # a client after the end reads the stream's record
    messages = []
    with contextlib.suppress(nats.errors.TimeoutError):
        while True:
            messages.append(await raw.next_msg(timeout=0.5))
    await wire.close()

    every, steps = readers["all"].events, readers["steps"].events
    assert every[-1].event == steps[-1].event == "end"
    assert every[-1].json()["task_status"] == "completed"
    ids = numbered(every)
    assert ids == list(range(1, len(ids) + 1))  # the stream's items, each once, in order, none skipped
    deltas = [e for e in every if e.event == "llm_delta"]
    assert {e.json()["data"]["role"] for e in deltas} >= {"code_generation", "documentation"}
    assert all(e.id is None for e in deltas)  # sent by the calls, not on the stream: no id to resume from
    assert not [e for e in steps if e.event in ("llm_delta", "gap")]
    assert numbered(steps) == ids
    seen = [(e.id, e.event, e.data) for e in every if e.id]
    assert [(e.id, e.event, e.data) for e in later if e.id][: len(seen)] == seen  # the same as the stream's record

    kinds = await history_kinds(client, session_id)
    assert kinds[POLL_UPDATE] == 0 and kinds[PUBLISH_SIGNAL] == 0, kinds  # nothing of the watching in history
    assert len([m for m in messages if OFFSET_HEADER in (m.headers or {})]) >= len(ids) - 2  # the items went there


async def test_a_stream_stopping_at_awaiting_feedback_ends_with_the_result_of_a_task_with_no_window(
    client: Client,
    task_queue: str,
    worker_settings: WorkerSettings,
    fake_llm: FakeLlmServer,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task with no feedback window sends `awaiting_feedback` and its completion from one workflow task, while
    that task runs: the stream's end waits for the completion and reads the result, not the `status` query (which
    would reach the run as it closes, for a worker to answer by replaying all of it)."""
    received = Subscription.received

    async def one_at_a_time(self: Subscription, msg: Msg) -> None:
        """Messages that arrive together reach a client together, and its stream then stops at the completion:
        here each reaches the client before the next, so that a stream stops at `awaiting_feedback`."""
        await received(self, msg)
        await asyncio.sleep(0.05)

    monkeypatch.setattr(Subscription, "received", one_at_a_time)
    counted, queries = counting_queries(client)
    app = make_app(task_queue, counted, nats_url=nats_url)
    hub: StreamHub = app.state.streams
    settings = worker_settings.model_copy(update={"nats_url": nats_url})

    async def watch_one(http: httpx.AsyncClient) -> tuple[str, str, str]:
        """(the last status the stream sent, its last event, the task status that event carries)"""
        session_id = new_id()
        fake_llm.reset()
        fake_llm.hold_after = 1  # the planner answers, then the code agent's first call waits
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
            reader = Reader(response)
            await reader.until(lambda e: e.event == "plan")
            await wait_until(lambda: hub.watchers(session_id) == 1, within=5)
            fake_llm.hold_after = None
            fake_llm.release()
            events = await reader.until(lambda e: e.event in ("end", "error", "timeout"))
        statuses = [e.json()["data"]["task_status"] for e in events if e.event == "status"]
        return statuses[-1], events[-1].event, events[-1].json()["task_status"]

    async with product_worker(client, settings), live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        ends = [await watch_one(http) for _ in range(3)]
    assert all(end[1:] == ("end", "completed") for end in ends), ends
    assert ("awaiting_feedback", "end", "completed") in ends, ends  # a stream stopped before the completion came
    assert queries.sent[STATUS_QUERY] == 0, queries.sent


async def test_what_a_task_sends_while_its_first_watcher_catches_up_comes_from_the_subscription(
    client: Client, task_queue: str, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, nats_url: str
) -> None:
    """The feed subscribes before its catch-up read. Here the plan is sent on the channel after that read was
    answered and before the gateway has the answer back: the watcher gets it from the subscription, with no second
    read of the stream (and not only at the feed's quiet read, QUIET seconds later)."""
    session_id = new_id()
    converter = converter_for(client.data_converter, client.namespace, session_id)
    plan_sent = asyncio.Event()

    async def saw(msg: Msg) -> None:
        [event] = await converter.decode([Payload.FromString(msg.data)], [TaskEvent])
        if event.type == EventType.PLAN:
            plan_sent.set()

    async def answered(query: str) -> None:
        if query == POLL_QUERY and queries.sent[POLL_QUERY] == 1:  # the catch-up: the planner goes on now
            fake_llm.hold_after = None
            fake_llm.release()
            await asyncio.wait_for(plan_sent.wait(), 30)

    counted, queries = counting_queries(client, answered)
    app = make_app(task_queue, counted, nats_url=nats_url)
    settings = worker_settings.model_copy(update={"nats_url": nats_url})
    fake_llm.hold_after = 0  # the planner's call waits (then fails once, and is retried)
    wire = await nats.connect(nats_url)
    try:
        await wire.subscribe(subject(client.namespace, session_id), cb=saw)
        async with (
            product_worker(client, settings),
            live_server(app) as url,
            httpx.AsyncClient(base_url=url, timeout=4 * QUIET) as http,
        ):
            body = {**QUICK_TASK, "session_id": session_id}
            assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
            await wait_until(lambda: fake_llm.held == 1, within=10)  # started: its first status is there to read
            async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
                reader = Reader(response)
                await reader.until(lambda e: e.event == "plan")
                reads = queries.sent[POLL_QUERY]  # the catch-up's, answered before the planner could answer
                await reader.until(lambda e: e.event in ("end", "error", "timeout"))
    finally:
        await wire.close()
    events = reader.events
    assert reads == 1, queries.sent
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "completed", events[-1]
    ids = numbered(events)
    assert ids == list(range(1, len(ids) + 1))  # every item, once, in order


async def test_a_client_who_comes_while_nats_is_away_follows_the_task_from_its_stream(
    client: Client, task_queue: str, worker: Worker
) -> None:
    """The gateway's NATS went away: a client connecting now is not held up by its subscription (made again once
    NATS is back) and follows the task from the workflow's stream, to its end."""
    session_id = new_id()
    with contextlib.ExitStack() as nats_block:
        server = nats_block.enter_context(nats_server())
        app = make_app(task_queue, client, nats_url=server.url)
        hub: StreamHub = app.state.streams
        async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=4 * QUIET) as http:
            assert isinstance(hub.live, LiveChannel)
            channel = hub.live
            nats_block.close()  # nats-server stops
            await wait_until(lambda: not channel.nc.is_connected, within=10)
            body = {**QUICK_TASK, "session_id": session_id}
            assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
            events = await watch_to_end(http, session_id)
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "completed", events[-1]
    ids = numbered(events)
    assert ids == list(range(1, len(ids) + 1))


class Subscribing:
    """The gateway's live channel, keeping every subscription it makes."""

    def __init__(self, live: LiveChannel) -> None:
        self.live = live
        self.made: list[Subscription] = []

    async def subscribe(self, client: Client, session_id: str) -> Subscription:
        self.made.append(await self.live.subscribe(client, session_id))
        return self.made[-1]


async def test_a_task_started_with_a_stream_is_watched_from_its_first_event_and_a_refused_start_subscribes_nothing(
    client: Client, task_queue: str, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, nats_url: str
) -> None:
    """`POST /invoke` streaming over the live channel subscribes before it starts the task, and its watcher gets
    every event in order; a start refused (the id is taken) closes the subscription it made."""
    session_id = new_id()
    app = make_app(task_queue, client, nats_url=nats_url)
    hub: StreamHub = app.state.streams
    settings = worker_settings.model_copy(update={"nats_url": nats_url})
    body = {**QUICK_TASK, "session_id": session_id}
    async with product_worker(client, settings), live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert isinstance(hub.live, LiveChannel)
        channel = hub.live = Subscribing(hub.live)
        try:
            async with http.stream("POST", "/invoke", json=body, headers=ALICE) as response:
                events = await Reader(response).until(lambda e: e.event in ("end", "error", "timeout"))
            again = await http.post("/invoke", json=body, headers=ALICE)
            await wait_until(lambda: all(made.closed for made in channel.made), within=5)
        finally:
            hub.live = channel.live
    assert events[0].event == "session" and events[-1].event == "end", events
    assert events[-1].json()["task_status"] == "completed"
    ids = numbered(events)
    assert ids == list(range(1, len(ids) + 1))
    assert again.status_code == 409
    assert len(channel.made) == 2


async def test_a_task_whose_worker_sends_nothing_on_the_channel_is_followed_by_long_poll(
    client: Client, task_queue: str, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, nats_url: str
) -> None:
    """A worker without the live channel (an older one, or one configured without it): the gateway's feed reads
    the stream once the task was quiet for 5 s, finds items NATS never carried, and long-polls from there: its
    watcher still gets every event, in order, and the end."""
    fake_llm.hold_after = 1  # the planner answers, then the code agent's first call waits
    session_id = new_id()
    app = make_app(task_queue, client, nats_url=nats_url)
    async with (
        product_worker(client, worker_settings),
        live_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=4 * QUIET) as http,  # nothing comes before the first quiet read
    ):
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
            reader = Reader(response)
            await reader.until(lambda e: e.event == "plan")
            fake_llm.hold_after = 2  # that call answers (its events reach only the stream), the next one waits
            fake_llm.release()
            await reader.until(lambda e: e.event == "llm_call" and e.json()["agent"] == "code_generation")
            fake_llm.hold_after = None
            fake_llm.release()
            events = await reader.until(lambda e: e.event in ("end", "error", "timeout"))
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "completed"
    ids = numbered(reader.events)
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 5
    assert (await history_kinds(client, session_id))[POLL_UPDATE] > 0  # followed by long-poll once found out


async def test_with_nats_away_the_worker_runs_tasks_and_the_gateway_polls_the_stream(
    client: Client, task_queue: str, worker_settings: WorkerSettings
) -> None:
    away = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    session_id = new_id()
    app = make_app(task_queue, client, nats_url=away)
    hub: StreamHub = app.state.streams
    settings = worker_settings.model_copy(update={"nats_url": away})
    async with product_worker(client, settings), live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert hub.live is None  # said in the log; watchers long-poll the workflow stream
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        events = await watch_to_end(http, session_id)
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "completed"
    assert (await history_kinds(client, session_id))[POLL_UPDATE] > 0


def test_subjects_keep_one_token_per_name_whatever_its_dots() -> None:
    assert subject("default", "a.b") == "orchestrator.live.default.a~2Eb"
    assert subject("default", "a~2Eb") != subject("default", "a.b")
    assert subject("prod.eu", "x") == "orchestrator.live.prod~2Eeu.x"


async def test_messages_no_worker_sent_neither_stop_nor_skip_a_watchers_events(
    client: Client, task_queue: str, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, nats_url: str
) -> None:
    """Bytes that are no payload, and a well-formed item at an offset the task never reached, published on the
    task's subject mid-task: the watcher's stream goes on, every event once and in order, without the forged one."""
    fake_llm.hold_after = 1
    session_id = new_id()
    app = make_app(task_queue, client, nats_url=nats_url)
    settings = worker_settings.model_copy(update={"nats_url": nats_url})
    forged = TaskEvent(id=0, at="2026-01-01T00:00:00+00:00", type=EventType.WARNING, message="forged event")
    [payload] = await client.data_converter.encode([forged])
    wire = await nats.connect(nats_url)
    async with product_worker(client, settings), live_server(app) as url, httpx.AsyncClient(base_url=url) as http:
        body = {**QUICK_TASK, "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        async with http.stream("GET", f"/events/{session_id}", headers=ALICE) as response:
            reader = Reader(response)
            await reader.until(lambda e: e.event == "plan")
            where = subject(client.namespace, session_id)
            await wire.publish(where, b"\x00 not a payload", headers={OFFSET_HEADER: "5"})
            await wire.publish(where, payload.SerializeToString(), headers={OFFSET_HEADER: str(10**9)})
            await wire.flush()
            fake_llm.hold_after = None
            fake_llm.release()
            events = await reader.until(lambda e: e.event in ("end", "error", "timeout"))
    await wire.close()
    assert events[-1].event == "end" and events[-1].json()["task_status"] == "completed"
    ids = numbered(reader.events)
    assert ids == list(range(1, len(ids) + 1))
    assert not [e for e in reader.events if "forged event" in e.data]


async def test_a_tenants_task_crosses_nats_encrypted_for_its_tenant(
    client: Client, task_queue: str, worker_settings: WorkerSettings, nats_url: str
) -> None:
    """With PAYLOAD_ENCRYPTION_KEYS, what a tenant's task sends on the channel (its events and its calls' text) is
    encrypted for that tenant, as its history is: a reader of the subject without the keys sees no plain text."""
    keys = {"PAYLOAD_ENCRYPTION_KEYS": "k1=" + base64.b64encode(os.urandom(32)).decode()}
    config = client.service_client.config
    client = await Client.connect(config.target_host, namespace=client.namespace, data_converter=data_converter(keys))
    settings = worker_settings.model_copy(update={"nats_url": nats_url})
    wire = await nats.connect(nats_url)

    async def answer(msg: Msg) -> None:  # watching every task, as a gateway's feed answers for its task
        await msg.respond(b"")

    await wire.subscribe(subject(client.namespace, "*", ASK_PREFIX), cb=answer)
    raw = await wire.subscribe(subject(client.namespace, "*"))
    async with product_worker(client, settings):
        with encrypting_for("alice"):
            handle = await start_task(client, task_queue, feedback_window_seconds=0)
        await handle.result()
        messages = []
        with contextlib.suppress(nats.errors.TimeoutError):
            while True:
                messages.append(await raw.next_msg(timeout=0.5))
    await wire.close()
    assert {OFFSET_HEADER in (m.headers or {}) for m in messages} == {True, False}  # events and the calls' text
    payloads = [Payload.FromString(m.data) for m in messages]
    assert all(p.metadata[TENANT_METADATA] == b"alice" for p in payloads)
    assert not [m for m in messages if b"task_status" in m.data or b"llm_delta" in m.data]
    converter = converter_for(client.data_converter, client.namespace, handle.id)
    events = await converter.decode(payloads, [TaskEvent] * len(payloads))
    assert EventType.LLM_DELTA in {e.type for e in events} and EventType.STATUS in {e.type for e in events}
