"""Gateway safety over HTTP: auth, tenant isolation, rate limit, body and field limits, bad input, Temporal down."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from orchestrator.payload_store import STORE_ENV
from orchestrator.temporal import data_converter
from tests.gateway.support import ALICE, BOB, QUICK_TASK, TcpProxy, asgi_client, make_app, wait_for_status
from tests.support import free_port
from workflows.models import MAX_CODE_CONTEXT, MAX_INLINE_CODE_CONTEXT, MAX_TESTS

SID = "safety-unknown-id"
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/invoke?stream=false", QUICK_TASK),
    ("GET", f"/events/{SID}", None),
    ("GET", f"/status/{SID}", None),
    ("POST", f"/feedback/{SID}", {"rating": 4}),
    ("POST", f"/cancel/{SID}", None),
    ("GET", "/metrics", None),
]


@pytest.fixture
async def alice_task(http: httpx.AsyncClient, client: Client) -> AsyncIterator[str]:
    """A task of tenant alice that stays running (no worker polls its queue); terminated afterwards."""
    session_id = f"alice-{uuid.uuid4().hex[:10]}"
    response = await http.post("/invoke?stream=false", json={**QUICK_TASK, "session_id": session_id}, headers=ALICE)
    assert response.status_code == 202
    yield session_id
    await client.get_workflow_handle(session_id).terminate("test over")


@pytest.mark.parametrize("headers", [{}, {"X-API-KEY": "wrong-key-0123456789abcdef"}, {"X-API-KEY": ""}])
async def test_every_endpoint_but_health_needs_a_known_key(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path, body in ENDPOINTS:
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "missing or unknown X-API-KEY header"}
    health = await http.get("/health")
    assert health.status_code == 200
    assert health.json()["temporal"] is True


async def test_another_tenants_task_looks_unknown_on_every_endpoint(http: httpx.AsyncClient, alice_task: str) -> None:
    assert (await http.get(f"/status/{alice_task}", headers=BOB)).status_code == 404
    for method, path, body in ENDPOINTS[1:5]:
        unknown = await http.request(method, path, json=body, headers=BOB)
        foreign = await http.request(method, path.replace(SID, alice_task), json=body, headers=BOB)
        assert unknown.status_code == foreign.status_code == 404, (method, path)
        assert foreign.json() == {"detail": f"no task with session id {alice_task!r}"}
        assert unknown.json() == {"detail": f"no task with session id {SID!r}"}
    # the owner still sees it, untouched by bob's attempts
    description = await http.post(f"/cancel/{alice_task}", headers=ALICE)
    assert description.json()["outcome"] == "cancel_requested"
    # ids are global: bob cannot take alice's id either (409, without any of alice's data)
    taken = await http.post("/invoke?stream=false", json={**QUICK_TASK, "session_id": alice_task}, headers=BOB)
    assert taken.status_code == 409


async def test_rate_limit_per_key(client: Client, task_queue: str) -> None:
    async with asgi_client(make_app(task_queue, client, gateway_rate_limit="3/minute")) as http:
        for _ in range(3):
            assert (await http.get(f"/status/{SID}", headers=ALICE)).status_code == 404
        limited = await http.get(f"/status/{SID}", headers=ALICE)
        assert limited.status_code == 429
        assert "rate limit 3 per 1 minute exceeded" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await http.get(f"/status/{SID}", headers=BOB)).status_code == 404  # bob has his own budget
        assert (await http.get("/health")).status_code == 200


async def test_body_size_limit(client: Client, task_queue: str) -> None:
    async with asgi_client(make_app(task_queue, client, gateway_max_body_bytes=2048)) as http:
        big = {"task_description": "x" * 4000}
        response = await http.post("/invoke?stream=false", json=big, headers=ALICE)
        assert response.status_code == 413
        assert response.json() == {"detail": "request body larger than 2048 bytes"}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the streamed size counts
            yield b'{"task_description": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        chunked = await http.post(
            "/feedback/x", content=chunks(), headers={**ALICE, "Content-Type": "application/json"}
        )
        assert chunked.status_code == 413


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/status/a%20b", 422),
        ("/status/%E2%98%83", 422),
        ("/status/..%2F..%2Fetc", 404),  # the router never sees it as one id: no route
        ("/status/.hidden", 422),
        ("/status/" + "a" * 129, 422),
    ],
)
async def test_session_ids_and_query_parameters_are_checked(http: httpx.AsyncClient, path: str, expected: int) -> None:
    response = await http.get(path, headers=ALICE)
    assert response.status_code == expected, response.text
    assert response.json()["detail"]
    if expected == 422:
        assert [e["field"] for e in response.json()["errors"]] == ["path.session_id"]


async def test_bad_event_positions_are_422(http: httpx.AsyncClient, alice_task: str) -> None:
    for query, field in [("after=-1", "query.after"), ("after=abc", "query.after"), ("after=1e99", "query.after")]:
        response = await http.get(f"/events/{alice_task}?{query}", headers=ALICE)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field
    response = await http.get(f"/events/{alice_task}", headers={**ALICE, "Last-Event-ID": "12; drop"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.last-event-id"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),  # not JSON at all: the body, not a field
        (b"[1, 2]", "body"),
        (b'{"task_description": 5}', "body.task_description"),
        (b'{"task_description": "   "}', "body.task_description"),
        (b'{"task_description": "' + b"x" * 20_001 + b'"}', "body.task_description"),
        (b'{"task_description": "ok", "code_context": "' + b"x" * (MAX_CODE_CONTEXT + 1) + b'"}', "body.code_context"),
        (b'{"task_description": "ok", "files": [{"path": "../etc/passwd", "content": ""}]}', "body.files.0.path"),
        (b'{"task_description": "ok", "files": [{"path": "/etc/passwd", "content": ""}]}', "body.files.0.path"),
        (b'{"task_description": "ok", "files": [{"path": "a//b.py", "content": ""}]}', "body.files.0.path"),
        (b'{"task_description": "ok", "files": [{"path": "a\\\\b.py", "content": ""}]}', "body.files.0.path"),
        (b'{"task_description": "ok", "files": [{"path": "", "content": ""}]}', "body.files.0.path"),
        (b'{"task_description": "ok", "files": [{"path": "a.py"}]}', "body.files.0.content"),
        (b'{"task_description": "ok", "files": [{"path": "a.py", "content": "", "mode": 1}]}', "body.files.0.mode"),
        (
            b'{"task_description": "ok", "files": [{"path": "a.py", "content": ""}, {"path": "a.py", "content": "x"}]}',
            "body.files",
        ),
        (
            b'{"task_description": "ok", "code_context": "'
            + b"x" * (MAX_CODE_CONTEXT // 2)
            + b'", "files": [{"path": "a.py", "content": "'
            + b"x" * (MAX_CODE_CONTEXT // 2 + 1)
            + b'"}]}',
            "body.files",
        ),
        (b'{"task_description": "ok", "session_id": "../../etc"}', "body.session_id"),
        (b'{"task_description": "ok", "session_id": "' + b"a" * 129 + b'"}', "body.session_id"),
        (b'{"task_description": "ok", "owner": "bob"}', "body.owner"),
        (b'{"task_description": "ok", "max_agent_steps": 1000}', "body.max_agent_steps"),
        (b'{"task_description": "ok", "code_model": "evil:model"}', "body.code_model"),
        (b'{"task_description": "ok", "tests": "' + b"x" * (MAX_TESTS + 1) + b'"}', "body.tests"),
        (b'{"task_description": "ok", "tests": " "}', "body.tests"),
        (b'{"task_description": "ok", "module": "../solution.py"}', "body.module"),
        (b'{"task_description": "ok", "module": "my-module.py"}', "body.module"),
        (b'{"task_description": "ok", "module": "a.py", "files": [{"path": "a.py", "content": ""}]}', "body.module"),
        (b'{"task_description": "ok", "test_gate": "strict"}', "body.test_gate"),
    ],
)
async def test_malformed_invoke_bodies_get_422_naming_the_field(
    http: httpx.AsyncClient, content: bytes, field: str
) -> None:
    headers = {**ALICE, "Content-Type": "application/json"}
    response = await http.post("/invoke?stream=false", content=content, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert len(response.content) < 5000  # nothing echoed back


async def test_tests_over_the_size_limit_get_a_clear_422(http: httpx.AsyncClient) -> None:
    body = {**QUICK_TASK, "tests": "def test_x():\n    pass\n" + "#" * MAX_TESTS}
    response = await http.post("/invoke?stream=false", json=body, headers=ALICE)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body.tests" and error["type"] == "string_too_long", error
    assert error["reason"] == f"String should have at most {MAX_TESTS} characters"


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("\\ud800 lone surrogate", None),  # not Unicode text: refused
        ("nul \\u0000 byte", "nul \u0000 byte"),
        ("rtl \\u202e override", "rtl \u202e override"),
        ("emoji \\ud83d\\ude00", "emoji \U0001f600"),
    ],
)
async def test_odd_unicode_is_refused_or_stored_intact(
    http: httpx.AsyncClient, client: Client, text: str, stored: str | None
) -> None:
    session_id = f"uni-{uuid.uuid4().hex[:10]}"
    content = ('{"task_description": "' + text + '", "session_id": "' + session_id + '"}').encode()
    headers = {**ALICE, "Content-Type": "application/json"}
    response = await http.post("/invoke?stream=false", content=content, headers=headers)
    if stored is None:
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["body.task_description"]
        return
    assert response.status_code == 202, response.text
    handle = client.get_workflow_handle(session_id)
    history = await handle.fetch_history()
    [payload] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    assert json.loads(payload.data)["task_description"] == stored
    await handle.terminate("test over")


async def test_feedback_ratings_are_json_schema_integers(http: httpx.AsyncClient, worker: Worker) -> None:
    """3.0 is the integer 3 in JSON Schema, as the published document says; "3", true and 3.5 are not integers."""
    alice_task = f"alice-{uuid.uuid4().hex[:10]}"
    body = {**QUICK_TASK, "session_id": alice_task, "feedback_window_seconds": 60}
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    await wait_for_status(http, alice_task, {"awaiting_feedback"}, ALICE)  # feedback is taken then only
    accepted = await http.post(f"/feedback/{alice_task}", json={"rating": 3.0}, headers=ALICE)
    assert accepted.status_code == 202, accepted.text
    for rating in ("3", True, 3.5):
        refused = await http.post(f"/feedback/{alice_task}", json={"rating": rating}, headers=ALICE)
        assert refused.status_code == 422, (rating, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["body.rating"]


async def test_temporal_down_at_start_and_later_then_recovery(
    temporal_env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    proxy = TcpProxy(temporal_env.client.service_client.config.target_host, port)
    app = make_app(task_queue, client=None, gateway_rpc_timeout=2.0)
    async with asgi_client(app) as http:
        down = await http.get(f"/status/{SID}", headers=ALICE)
        assert down.status_code == 503
        assert down.json()["detail"].startswith("Temporal is unreachable")
        assert (await http.post("/invoke", json=QUICK_TASK, headers=ALICE)).status_code == 503
        health = (await http.get("/health")).json()
        assert health["status"] == "degraded" and not health["temporal"]

        await proxy.start()  # Temporal comes up: the gateway connects on the next request, no restart
        assert (await http.get(f"/status/{SID}", headers=ALICE)).status_code == 404
        health = (await http.get("/health")).json()
        assert health["temporal"] and not health["worker"]
        assert health["reasons"] == [f"no worker is polling the task queue {task_queue!r}"]

        await proxy.stop()  # Temporal goes away after the connection was made
        started = time.monotonic()
        gone = await http.get(f"/status/{SID}", headers=ALICE)
        assert gone.status_code == 503, gone.text
        assert time.monotonic() - started < 15

        await proxy.start()
        for _ in range(50):  # the SDK's channel reconnects with a backoff
            if (await http.get(f"/status/{SID}", headers=ALICE)).status_code == 404:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the gateway did not recover after Temporal came back")
        await proxy.stop()


async def test_code_context_limits(client: Client, task_queue: str, tmp_path: Path) -> None:
    """Up to MAX_CODE_CONTEXT with the payload store (the default body limit lets it through), 422 above it; without
    the store, 413 above what a history holds inline, naming the setting."""
    line = "def f(x):\n    return x\n"
    biggest = (line * (MAX_CODE_CONTEXT // len(line) + 1))[:MAX_CODE_CONTEXT]
    async with asgi_client(make_app(task_queue, client)) as http:
        over = await http.post(
            "/invoke?stream=false", json={**QUICK_TASK, "code_context": biggest + "x"}, headers=ALICE
        )
        assert over.status_code == 422 and "code_context" in over.text
        inline = await http.post(
            "/invoke?stream=false",
            json={**QUICK_TASK, "code_context": biggest[: MAX_INLINE_CODE_CONTEXT + 1]},
            headers=ALICE,
        )
        assert inline.status_code == 413 and STORE_ENV in inline.json()["detail"], inline.text
        half = MAX_INLINE_CODE_CONTEXT // 2 + 1  # files count toward the same limits
        files = [{"path": "a.py", "content": biggest[:half]}, {"path": "b/c.py", "content": biggest[:half]}]
        as_files = await http.post("/invoke?stream=false", json={**QUICK_TASK, "files": files}, headers=ALICE)
        assert as_files.status_code == 413 and "files" in as_files.json()["detail"], as_files.text
        with_tests = {
            **QUICK_TASK,
            "code_context": biggest[:MAX_INLINE_CODE_CONTEXT],
            "tests": "def test_x():\n    pass\n",
        }
        as_tests = await http.post("/invoke?stream=false", json=with_tests, headers=ALICE)  # the tests count too
        assert as_tests.status_code == 413 and "tests" in as_tests.json()["detail"], as_tests.text
    stored_client = await Client.connect(
        client.service_client.config.target_host,
        namespace="default",
        data_converter=data_converter({STORE_ENV: str(tmp_path / "payloads.sqlite")}),
    )
    async with asgi_client(make_app(task_queue, stored_client)) as http:
        started = await http.post("/invoke?stream=false", json={**QUICK_TASK, "code_context": biggest}, headers=ALICE)
        assert started.status_code == 202, started.text
        session = started.json()["session_id"]
    description = await stored_client.get_workflow_handle(session).describe()
    assert description.raw_description.workflow_execution_info.history_size_bytes < 20_000  # a reference, not 2 MB
    await stored_client.get_workflow_handle(session).terminate("test done")
