"""Requests on one task that come together share one describe (api/gateway/describes.py); each checks its owner."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from temporalio.client import Client, DescribeWorkflowInput, Interceptor, OutboundInterceptor
from temporalio.worker import Worker

from api.gateway.describes import Describes
from tests.gateway.support import ALICE, BOB, QUICK_TASK, asgi_client, intercepted, make_app
from tests.support import wait_until


class HeldDescribes(Interceptor):
    """Counts a client's describes; the first, once answered, is handed back only when `release` is set."""

    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        held = self

        class Outbound(OutboundInterceptor):
            async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
                held.sent += 1
                first = held.sent == 1
                try:
                    return await super().describe_workflow(input)
                finally:
                    if first:
                        await held.release.wait()

        return Outbound(next)


@contextlib.asynccontextmanager
async def gateway(client: Client, task_queue: str) -> AsyncIterator[tuple[httpx.AsyncClient, HeldDescribes, Describes]]:
    """A gateway whose client's describes are held (HeldDescribes): its HTTP client, the hold, its describes."""
    held = HeldDescribes()
    app = make_app(task_queue, intercepted(client, held))
    async with asgi_client(app) as http:
        yield http, held, app.state.describes


async def start(http: httpx.AsyncClient, session_id: str) -> None:
    body = {**QUICK_TASK, "session_id": session_id}
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202


async def test_status_reads_that_come_together_share_one_describe_and_each_checks_its_owner(
    client: Client, task_queue: str, worker: Worker
) -> None:
    session_id = f"desc-{uuid.uuid4().hex[:12]}"
    async with gateway(client, task_queue) as (http, held, describes):
        await start(http, session_id)
        await client.get_workflow_handle(session_id).result()
        reads = [asyncio.create_task(http.get(f"/status/{session_id}", headers=ALICE)) for _ in range(10)]
        other = asyncio.create_task(http.get(f"/status/{session_id}", headers=BOB))
        await wait_until(lambda: describes.waiting[session_id] == 11, within=10)
        held.release.set()
        answers = await asyncio.gather(*reads)
        refused = await other
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.json()["task_status"] for a in answers} == {"completed"}
    assert refused.status_code == 404  # another tenant's task, as if unknown
    assert held.sent == 1
    assert not describes.waiting


async def test_a_task_not_found_by_a_describe_sent_before_it_started_is_described_again_for_a_later_request(
    client: Client, task_queue: str, worker: Worker
) -> None:
    session_id = f"desc-{uuid.uuid4().hex[:12]}"
    async with gateway(client, task_queue) as (http, held, describes):
        early = asyncio.create_task(http.get(f"/status/{session_id}", headers=ALICE))
        await wait_until(lambda: describes.waiting[session_id] == 1, within=10)
        await start(http, session_id)
        later = asyncio.create_task(http.get(f"/status/{session_id}", headers=ALICE))
        await wait_until(lambda: describes.waiting[session_id] == 2, within=10)
        held.release.set()
        assert (await early).status_code == 404  # asked before the task existed
        assert (await later).status_code == 200
    assert held.sent == 2
