"""Property-based fuzz of the gateway's OpenAPI spec (schemathesis + hypothesis): no input ever gets a 5xx.

Every operation is fuzzed with valid (positive) and invalid (negative) inputs, with alice's key, in JSON mode
(streams are covered end to end in test_gateway.py). Requests go through schemathesis' ASGI client in a thread,
so a real worker keeps answering queries in the test's event loop; the model calls of the tasks that valid
`/invoke`s start are held, and the tasks are terminated afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from temporalio.client import Client
from temporalio.worker import Worker

from tests.fakes.llm_server import FakeLlmServer
from tests.gateway.support import ALICE, make_app

EXAMPLES = 25


@pytest.fixture
async def quiet_tasks(client: Client, task_queue: str, worker: Worker, fake_llm: FakeLlmServer) -> AsyncIterator[None]:
    """Tasks started by the fuzz wait on their first model call, and are terminated at the end."""
    fake_llm.hold_after = 0
    yield
    fake_llm.release()
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"):
        await client.get_workflow_handle(execution.id).terminate("fuzz over")


def check(case: Any) -> None:
    if isinstance(case.query, dict) and "stream" in case.query:
        case.query["stream"] = "false"
    response = case.call(headers={**(case.headers or {}), "Accept": "application/json", **ALICE})
    label = f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        content_type = response.headers.get("content-type") or [""]
        assert content_type[0].startswith("application/json"), label
        assert response.json()["detail"], label


def fuzz(app: FastAPI, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the spec itself is valid
        operation = result.ok()
        test = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy(generation_mode=mode))(check)
        )
        try:
            test()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to make invalid (e.g. GET /health)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_no_input_gets_a_server_error(
    client: Client, task_queue: str, quiet_tasks: None, mode: GenerationMode
) -> None:
    app = make_app(task_queue, client, gateway_stream_max_seconds=1.0)  # /events of a fuzz task ends after 1 s
    await asyncio.to_thread(fuzz, app, mode)
