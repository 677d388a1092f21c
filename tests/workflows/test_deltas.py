"""Model text as it is written: the llm_chat activity publishes `llm_delta` events to the task's workflow stream,
numbered by attempt, while the reply recorded in history stays the whole reply; only while someone reads them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.testing import ActivityEnvironment

from activities import deltas as deltas_module
from activities.config import WorkerSettings
from activities.deltas import TICKER_NAME
from activities.llm import LlmActivities
from api.gateway.streams import catch_up
from orchestrator.codec import TENANT_METADATA, encrypting_for
from orchestrator.temporal import data_converter
from testbed.llm_server import GOOD_CODE, NEEDS_ONE_FIX, FakeLlmServer, Fault
from tests.support import product_worker, start_task, wait_until
from workflows import watch
from workflows.journal import PUBLISH_SIGNAL
from workflows.models import (
    DELTA_TOPIC,
    STREAM_TOPICS,
    WATCHED_UNTIL_MEMO,
    AgentRole,
    ChatMessage,
    EventType,
    LlmRequest,
    TaskEvent,
    TaskState,
    TaskStatus,
)

STREAMED = [DELTA_TOPIC]

PLAN = "1. Write an add function.\n2. Lint it.\n3. Document it."


async def run_collecting_deltas(
    client: Client, settings: WorkerSettings, task_queue: str
) -> tuple[TaskState, list[TaskEvent]]:
    """One task on a product worker, its final state and every `llm_delta` event its stream carried. Checks that
    each call's end stopped what sent its batches: nothing of it is left running."""
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        stream = WorkflowStreamClient.create(client, handle.id)

        async def collect() -> list[TaskEvent]:
            return [item.data async for item in stream.subscribe([DELTA_TOPIC], result_type=TaskEvent)]

        reader = asyncio.create_task(collect())
        final = await asyncio.wait_for(handle.result(), 60)
        deltas = await asyncio.wait_for(reader, 30)
        left = [t for t in asyncio.all_tasks() if t.get_name() == TICKER_NAME or "_run_flusher" in repr(t.get_coro())]
    assert not left, left
    return final, deltas


async def test_deltas_carry_role_step_and_attempt_and_a_retried_attempt_starts_over(
    client: Client,
    fake_llm: FakeLlmServer,
    worker_settings: WorkerSettings,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_llm.piece_chars, fake_llm.chunk_delay = 6, 0.03  # text in pieces, a few batches a call
    # The planner's first stream breaks after 1 s (the reader is there by then: the call, scheduled before it came,
    # finds its lease at its first look, 50 ms after its first text).
    fake_llm.add_fault("openai", Fault(cut_after=5, match="planner", delay=1.0))
    monkeypatch.setattr(deltas_module, "FIRST_LOOK", timedelta(milliseconds=50))
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 100})
    final, deltas = await run_collecting_deltas(client, settings, task_queue)
    assert final.task_status == TaskStatus.COMPLETED and final.plan == PLAN
    assert fake_llm.cut == 1 and fake_llm.total_served == 5  # the cut call was retried; none was paid twice
    assert all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    assert deltas and all(d.type == EventType.LLM_DELTA for d in deltas)
    text: dict[tuple[str, int, int], str] = defaultdict(str)
    for d in deltas:
        assert set(d.data) == {"role", "step", "attempt", "text"} and d.agent == d.data["role"] and d.data["text"]
        text[d.data["role"], d.data["step"], d.data["attempt"]] += d.data["text"]
    planner = AgentRole.PLANNER.value
    # The broken attempt published what it had; the retry (attempt 2) starts over and is the whole reply.
    assert text[planner, 1, 1] and PLAN.startswith(text[planner, 1, 1]) and text[planner, 1, 1] != PLAN
    assert text[planner, 1, 2] == PLAN
    # Tool-call turns write no text; each agent's answering turn (step 2) streams the reply history records.
    assert set(text) == {(planner, 1, 1), (planner, 1, 2), ("code_generation", 2, 1), ("documentation", 2, 1)}
    assert GOOD_CODE in text["code_generation", 2, 1]
    assert final.results.documentation is not None
    assert text["documentation", 2, 1].strip() == final.results.documentation.documentation
    assert len([d for d in deltas if d.data["role"] == "code_generation"]) > 1  # batches, not one event per call


async def test_a_call_that_ends_before_its_first_batch_sends_it_without_waiting_out_the_flush_timeout(
    client: Client,
    fake_llm: FakeLlmServer,
    worker_settings: WorkerSettings,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every reply streams at once and the interval is long, so each call's text goes out as its first text (at
    once) and the rest in one batch at its end. The stream client's own background flusher, used here before, lost
    its cancellation there (Python 3.11's asyncio.wait_for), so the end of every model call waited out the whole
    flush timeout (2 s). With that timeout made 10 minutes, such a wait cannot pass for a slow machine."""
    monkeypatch.setattr(deltas_module, "FLUSH_TIMEOUT", timedelta(minutes=10))
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 5000})
    final, deltas = await run_collecting_deltas(client, settings, task_queue)
    assert final.task_status == TaskStatus.COMPLETED
    batches = Counter((d.data["role"], d.data["step"]) for d in deltas)
    assert len(batches) == 3 and max(batches.values()) <= 2, deltas  # no batch waited for the interval
    assert "".join(d.data["text"] for d in deltas if d.data["role"] == "planner") == PLAN


async def test_a_call_whose_deltas_cannot_be_published_still_answers(
    fake_llm: FakeLlmServer, worker_settings: WorkerSettings
) -> None:
    """Outside a workflow (no stream to publish to) the call streams, drops its deltas and returns its reply."""
    llm = LlmActivities(worker_settings)
    request = LlmRequest(role=AgentRole.PLANNER, system="planner", messages=[ChatMessage(role="user", content="x")])
    try:
        reply = await ActivityEnvironment().run(llm.chat, request)
    finally:
        await llm.aclose()
    assert reply.content == PLAN and reply.input_tokens > 0 and fake_llm.total_served == 1


async def test_a_call_whose_delta_publish_fails_still_answers(
    client: Client, fake_llm: FakeLlmServer, worker_settings: WorkerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A real client, but the workflow to signal does not exist: the publish fails, the reply comes back whole."""
    fake_llm.piece_chars = 4
    llm = LlmActivities(worker_settings.model_copy(update={"llm_delta_interval_ms": 10}))
    env = ActivityEnvironment(client=client)
    env.info = dataclasses.replace(env.info, workflow_id="no-such-task", attempt=3)
    request = LlmRequest(role=AgentRole.PLANNER, system="planner", messages=[ChatMessage(role="user", content="x")])
    try:
        with caplog.at_level(logging.WARNING, logger="activities.deltas"):
            reply = await env.run(llm.chat, request)
    finally:
        await llm.aclose()
    assert reply.content == PLAN and fake_llm.total_served == 1
    assert any("llm_delta events of planner step 1 dropped" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_call_that_cannot_read_whether_it_is_watched_says_so_once_and_answers(
    client: Client,
    fake_llm: FakeLlmServer,
    worker_settings: WorkerSettings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scheduled unwatched, for a workflow that does not exist: every look's describe fails (several here), one
    warning says so, nothing is published and the reply comes back whole."""
    monkeypatch.setattr(deltas_module, "FIRST_LOOK", timedelta(milliseconds=20))
    monkeypatch.setattr(deltas_module, "LAST_LOOK", timedelta(milliseconds=40))
    looks = 0
    look = deltas_module.DeltaPublisher._watcher_came

    async def counted(publisher: deltas_module.DeltaPublisher) -> bool:
        nonlocal looks
        looks += 1
        return await look(publisher)

    monkeypatch.setattr(deltas_module.DeltaPublisher, "_watcher_came", counted)
    fake_llm.piece_chars, fake_llm.chunk_delay = 4, 0.05  # the plan in about 0.7 s: a dozen looks
    llm = LlmActivities(worker_settings.model_copy(update={"llm_delta_interval_ms": 10}))
    env = ActivityEnvironment(client=client)
    env.info = dataclasses.replace(env.info, workflow_id="no-such-task")
    messages = [ChatMessage(role="user", content="x")]
    request = LlmRequest(role=AgentRole.PLANNER, system="planner", messages=messages, deltas=False)
    try:
        with caplog.at_level(logging.WARNING, logger="activities.deltas"):
            reply = await env.run(llm.chat, request)
    finally:
        await llm.aclose()
    assert reply.content == PLAN and fake_llm.total_served == 1 and looks > 2
    warned = [r.getMessage() for r in caplog.records if r.name == "activities.deltas"]
    assert len(warned) == 1 and warned[0].startswith("cannot read whether planner step 1 is watched"), warned


async def test_each_live_block_of_a_quality_gate_round_opens_and_closes_once(
    client: Client, fake_llm: FakeLlmServer, worker_settings: WorkerSettings, task_queue: str
) -> None:
    """The console opens a live block on a call's first `llm_delta` (role, step) and closes it on the `llm_call`
    event of the same role and step (ui/stream.js). Through a fix round of the quality gate the two carry one step
    number, the workflow's, so every block closes, and no (role, step) is used twice in the task."""
    fake_llm.piece_chars = 8
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 20})
    async with product_worker(client, settings):
        handle = await start_task(
            client, task_queue, feedback_window_seconds=0, task_description=f"write an add function {NEEDS_ONE_FIX}"
        )
        stream = WorkflowStreamClient.create(client, handle.id)

        async def collect() -> list[TaskEvent]:
            return [item.data async for item in stream.subscribe(STREAM_TOPICS, result_type=TaskEvent)]

        reader = asyncio.create_task(collect())
        final = await asyncio.wait_for(handle.result(), 60)
        items = await asyncio.wait_for(reader, 30)
    code = final.results.code_generation
    assert code is not None and len(code.lint_rounds) == 1  # a fix round happened
    opened: list[tuple[str, int]] = []
    closed: list[tuple[str, int]] = []
    live: set[tuple[str, int]] = set()
    for item in items:
        if item.type == EventType.LLM_DELTA:
            key = (item.data["role"], item.data["step"])
            if key not in live:
                assert key not in opened, f"{key} opened twice"
                opened.append(key)
                live.add(key)
        elif item.type == EventType.LLM_CALL and item.agent is not None:
            key = (item.agent.value, item.data["step"])
            if key in live:
                live.remove(key)
                closed.append(key)
    assert live == set(), f"blocks never closed: {live}"
    assert opened == closed
    # The round's answer is step 3 of the code agent (steps 1-2 before it), as its llm_call event says.
    assert ("code_generation", 3) in opened and code.steps == 3


async def publish_signals(client: Client, session_id: str) -> int:
    history = await client.get_workflow_handle(session_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    return sum(1 for s in signals if s.signal_name == PUBLISH_SIGNAL)


async def streamed_deltas(client: Client, session_id: str) -> list[TaskEvent]:
    """The `llm_delta` events the task's stream holds (read once it has ended)."""
    return [
        item.data
        for item in (await catch_up(client, session_id, 0, timedelta(seconds=10))).items
        if item.data.type == EventType.LLM_DELTA
    ]


def text_of(deltas: list[TaskEvent], role: AgentRole) -> str:
    return "".join(d.data["text"] for d in deltas if d.data["role"] == role.value)


async def test_deltas_off_means_none_even_for_a_watched_task(
    client: Client, fake_llm: FakeLlmServer, worker_settings: WorkerSettings, task_queue: str
) -> None:
    """LLM_DELTA_INTERVAL_MS=0: a task read from its start gets no llm_delta at all, not even the text of a call it
    was scheduled unwatched (which the workflow otherwise publishes with the reply)."""
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 0})
    final, deltas = await run_collecting_deltas(client, settings, task_queue)
    assert final.task_status == TaskStatus.COMPLETED and deltas == []
    assert await publish_signals(client, final.session_id) == 0


async def test_a_task_nobody_watches_publishes_no_deltas_and_answers_the_same(
    client: Client, fake_llm: FakeLlmServer, worker_settings: WorkerSettings, task_queue: str
) -> None:
    """Deltas on, nobody reading the stream: no publish signal in the history, no lease in the memo, and the same
    results as a watched run of the same task."""
    fake_llm.piece_chars = 6
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 50})
    watched, deltas = await run_collecting_deltas(client, settings, task_queue)
    assert deltas and await publish_signals(client, watched.session_id) > 0
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        alone = await asyncio.wait_for(handle.result(), 60)
        assert await streamed_deltas(client, handle.id) == []  # a query: while the worker runs
    assert alone.task_status == TaskStatus.COMPLETED
    assert await publish_signals(client, handle.id) == 0
    assert await (await handle.describe()).memo_value(WATCHED_UNTIL_MEMO, None) is None
    assert alone.plan == watched.plan and alone.results == watched.results


@pytest.mark.parametrize(
    ("looks", "encrypted"),
    [(True, False), (False, False), (True, True)],
    ids=["found-by-a-look", "after-the-last-look", "found-by-a-look-in-an-encrypted-tenant-task"],
)
async def test_a_watcher_who_comes_mid_call_gets_the_call_text_from_its_start(
    client: Client,
    fake_llm: FakeLlmServer,
    worker_settings: WorkerSettings,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    looks: bool,
    encrypted: bool,
) -> None:
    """The planner's call starts unwatched; a reader comes after its first pieces were written. A look of the call
    finds the lease: it publishes everything it had as its first batch, then the rest as it comes. No look before
    the call's end (made 10 minutes apart here): the workflow publishes the call's text with its reply, whole.
    Encrypted: a tenant's task with PAYLOAD_ENCRYPTION_KEYS, whose memo the call reads is encrypted for alice."""
    if encrypted:
        keys = {"PAYLOAD_ENCRYPTION_KEYS": "k1=" + base64.b64encode(os.urandom(32)).decode()}
        config = client.service_client.config
        client = await Client.connect(
            config.target_host, namespace=client.namespace, data_converter=data_converter(keys)
        )
    if not looks:
        monkeypatch.setattr(deltas_module, "FIRST_LOOK", timedelta(minutes=10))
    fake_llm.piece_chars, fake_llm.chunk_delay = 2, 0.15  # the plan in about 4 s
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 100})
    async with product_worker(client, settings):
        with encrypting_for("alice") if encrypted else contextlib.nullcontext():
            handle = await start_task(client, task_queue, feedback_window_seconds=0)
        await wait_until(lambda: len(fake_llm.chunk_log) >= 4, within=30)  # mid-call: 4 pieces of the plan written
        stream = WorkflowStreamClient.create(client, handle.id)
        got: list[TaskEvent] = []

        async def collect() -> None:
            async for item in stream.subscribe(STREAMED, result_type=TaskEvent):
                got.append(item.data)
                fake_llm.chunk_delay = 0  # the plan's text is coming: the other calls go fast

        reader = asyncio.create_task(collect())
        final = await asyncio.wait_for(handle.result(), 90)
        await asyncio.wait_for(reader, 30)
    planner = [d for d in got if d.data["role"] == AgentRole.PLANNER.value]
    assert final.plan == PLAN and text_of(planner, AgentRole.PLANNER) == PLAN  # from its first character
    first_pieces = "".join(piece for _, piece in fake_llm.chunk_log[:4])
    assert planner[0].data["text"].startswith(first_pieces)  # what was written before the reader came, at once
    assert (len(planner) > 1) is looks  # a look: live batches after the first; none: one event at the end
    assert GOOD_CODE in text_of(got, AgentRole.CODE_GENERATION)  # later calls: watched from their start
    if encrypted:  # the memo the look read was the tenant's, not plain
        memo = (await handle.describe()).raw_description.workflow_execution_info.memo.fields[WATCHED_UNTIL_MEMO]
        assert memo.metadata[TENANT_METADATA] == b"alice"


async def test_a_lease_that_expires_stops_the_deltas_of_later_calls(
    client: Client,
    fake_llm: FakeLlmServer,
    worker_settings: WorkerSettings,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader who leaves at the planner's first batch: its lease (5 s here) is over before the planner's call
    (10 s) ends, so the agents' calls start unwatched, publish nothing, and their describes find no watcher."""
    monkeypatch.setattr(watch, "WATCH_LEASE", timedelta(seconds=5))
    fake_llm.piece_chars, fake_llm.chunk_delay = 2, 0.4
    settings = worker_settings.model_copy(update={"llm_delta_interval_ms": 100})
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        stream = WorkflowStreamClient.create(client, handle.id)
        async for _ in stream.subscribe(STREAMED, result_type=TaskEvent):
            break  # the planner's first batch: the reader leaves
        await wait_until(lambda: fake_llm.total_served >= 1, within=60)
        fake_llm.chunk_delay = 0  # the planner's reply has been served: the rest goes fast
        final = await asyncio.wait_for(handle.result(), 90)
        deltas = await streamed_deltas(client, handle.id)
    assert final.task_status == TaskStatus.COMPLETED and final.plan == PLAN
    assert text_of(deltas, AgentRole.PLANNER) == PLAN
    assert {d.data["role"] for d in deltas} == {AgentRole.PLANNER.value}, deltas
    assert final.results.documentation is not None and final.results.documentation.documentation
