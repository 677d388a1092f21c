"""`GET /tasks` against a real Temporal dev server: only the caller's tasks, newest first, filters, signed cursors,
the figures visibility keeps, and a clear 501 from a namespace without the search attributes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.auth import ApiKeyRegistry
from api.gateway.main import create_app
from tests.gateway.support import asgi_client, gateway_settings, wait_for_status
from tests.support import binary
from workflows.coding_task import CodingTask
from workflows.models import OWNER_MEMO, CodingTaskInput, start_search_attributes


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def tenants(suffix: str) -> dict[str, dict[str, str]]:
    """Two tenants of this test alone (`carol-<suffix>`, `dave-<suffix>`): their lists hold what the test started."""
    return {name: {"X-API-KEY": f"{name}-{suffix}-key-0123456789abcdef"} for name in ("carol", "dave")}


@pytest.fixture
async def http(
    client: Client, task_queue: str, tenants: dict[str, dict[str, str]], suffix: str
) -> AsyncIterator[httpx.AsyncClient]:
    registry = ApiKeyRegistry({f"{name}-{suffix}": headers["X-API-KEY"] for name, headers in tenants.items()})
    async with asgi_client(create_app(gateway_settings(task_queue), client=client, registry=registry)) as http:
        yield http
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"):
        await client.get_workflow_handle(execution.id).terminate("test over")


async def start(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    session_id = f"list-{uuid.uuid4().hex[:12]}"
    payload = {"task_description": "write an add function", "session_id": session_id, **body}
    response = await http.post("/invoke?stream=false", json=payload, headers=headers)
    assert response.status_code == 202, response.text
    return session_id


async def listed(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await http.get("/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed_until(
    http: httpx.AsyncClient, headers: dict[str, str], done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The list once `done(tasks)` holds: visibility records a workflow's close a moment after it happens."""
    tasks: list[dict[str, Any]] = []
    for _ in range(100):
        tasks = (await listed(http, headers))["tasks"]
        if tasks and done(tasks):
            return tasks
        await asyncio.sleep(0.1)
    pytest.fail(f"the list never got there: {tasks}")


async def test_each_key_lists_only_its_own_tasks_newest_first(
    http: httpx.AsyncClient, client: Client, tenants: dict[str, dict[str, str]]
) -> None:
    carol, dave = tenants["carol"], tenants["dave"]
    long_description = "write a function that parses ISO-8601 durations " + "x" * 300
    mine = [await start(http, carol, task_description=long_description) for _ in range(3)]  # no worker: they wait
    theirs = await start(http, dave)

    page = await listed(http, carol)
    assert [t["session_id"] for t in page["tasks"]] == mine[::-1]  # newest first
    assert page["next_page_token"] is None
    item = page["tasks"][0]
    assert item["task_description"] == long_description[:200]
    assert item["task_status"] == "planning" and item["workflow_status"] == "RUNNING"
    assert item["closed_at"] is None and item["run_id"]
    assert datetime.fromisoformat(item["created_at"]) <= datetime.now(UTC)
    assert item["lint_score"] is item["feedback_rating"] is item["cost_usd"] is None  # not that far yet
    assert [t["session_id"] for t in (await listed(http, dave))["tasks"]] == [theirs]

    await client.get_workflow_handle(mine[1]).terminate("ended early")
    after = await listed_until(http, carol, lambda tasks: tasks[-1]["workflow_status"] == "TERMINATED")
    # running tasks first (newest start first), then ended ones (most recently ended first): visibility's order
    assert [t["session_id"] for t in after] == [mine[2], mine[0], mine[1]]
    assert after[2]["workflow_status"] == "TERMINATED" and after[2]["closed_at"] is not None
    assert after[2]["task_status"] == "planning"  # what the task last said; workflow_status says it was stopped


async def test_a_finished_task_shows_its_lint_score_rating_tokens_and_cost(
    http: httpx.AsyncClient, tenants: dict[str, dict[str, str]], worker: Worker
) -> None:
    carol = tenants["carol"]
    session_id = await start(http, carol, feedback_window_seconds=60)
    await wait_for_status(http, session_id, {"awaiting_feedback"}, carol)
    assert (await http.post(f"/feedback/{session_id}", json={"rating": 4}, headers=carol)).status_code == 202
    state = await wait_for_status(http, session_id, {"completed"}, carol)
    [item] = await listed_until(http, carol, lambda tasks: tasks[0]["workflow_status"] == "COMPLETED")
    assert item["session_id"] == session_id and item["task_status"] == "completed"
    assert item["workflow_status"] == "COMPLETED" and item["closed_at"] is not None
    assert item["lint_score"] == state["results"]["code_generation"]["lint"]["score"]
    assert item["lint_gate"] == "passed"
    assert item["feedback_rating"] == 4
    assert item["total_tokens"] == sum(u["input_tokens"] + u["output_tokens"] for u in state["usage"].values())
    assert item["cost_usd"] == pytest.approx(state["cost_usd"])
    assert (await listed(http, carol, status="completed"))["tasks"][0]["session_id"] == session_id
    assert (await listed(http, carol, status="running"))["tasks"] == []


async def test_filters_and_pages(http: httpx.AsyncClient, tenants: dict[str, dict[str, str]]) -> None:
    carol = tenants["carol"]
    early = [await start(http, carol) for _ in range(2)]
    await asyncio.sleep(0.05)
    since = datetime.now(UTC).isoformat()
    late = [await start(http, carol) for _ in range(3)]

    seen, token, pages = [], None, 0
    while True:
        page = await listed(http, carol, page_size=2, **({"next_page_token": token} if token else {}))
        seen += [t["session_id"] for t in page["tasks"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == (early + late)[::-1] and pages == 3  # 2 + 2 + 1, none twice, none missed

    assert [t["session_id"] for t in (await listed(http, carol, since=since))["tasks"]] == late[::-1]
    both = await listed(http, carol, status=["planning", "running"], page_size=100)
    assert len(both["tasks"]) == 5
    assert (await listed(http, carol, status="awaiting_feedback"))["tasks"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 0}, "query.page_size"),
        ({"page_size": 101}, "query.page_size"),
        ({"status": "sleeping"}, "query.status.0"),
        ({"since": "yesterday"}, "query.since"),
        ({"since": "2026-01-01T00:00:00"}, "query.since"),  # no offset: which time is it?
        ({"since": "1767225600"}, "query.since"),  # a number is not a date-time, whatever pydantic would make of it
        ({"next_page_token": "not/base64!"}, "query.next_page_token"),
        ({"next_page_token": "x" * 5000}, "query.next_page_token"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    http: httpx.AsyncClient, tenants: dict[str, dict[str, str]], params: dict[str, Any], field: str
) -> None:
    response = await http.get("/tasks", params=params, headers=tenants["carol"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


async def test_page_tokens_work_only_for_the_key_and_filters_they_were_issued_for(
    http: httpx.AsyncClient, tenants: dict[str, dict[str, str]]
) -> None:
    carol, dave = tenants["carol"], tenants["dave"]
    for _ in range(3):
        await start(http, carol)
    token = (await listed(http, carol, page_size=1))["next_page_token"]
    assert token
    assert len((await listed(http, carol, page_size=1, next_page_token=token))["tasks"]) == 1
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for headers, params in [
        (dave, {"next_page_token": token}),  # another tenant
        (carol, {"next_page_token": token, "status": "planning"}),  # other filters
        (carol, {"next_page_token": tampered}),
        (carol, {"next_page_token": "bm90IGEgdG9rZW4"}),  # well-formed base64, not issued here
    ]:
        response = await http.get("/tasks", params={"page_size": 1, **params}, headers=headers)
        assert response.status_code == 409, params  # the published shape, but no listing continues from it
        assert response.json()["detail"].startswith("next_page_token is not a token this gateway issued"), params
    assert (await http.get("/tasks")).status_code == 401


async def test_a_task_whose_memo_names_another_owner_is_never_listed(
    http: httpx.AsyncClient, client: Client, task_queue: str, tenants: dict[str, dict[str, str]], suffix: str
) -> None:
    carol = tenants["carol"]
    mine = await start(http, carol)
    await client.start_workflow(  # Owner says carol, the memo (what every other route checks) says someone else
        CodingTask.run,
        CodingTaskInput(task_description="not carol's"),
        id=f"forged-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        memo={OWNER_MEMO: "mallory"},
        search_attributes=start_search_attributes(owner=f"carol-{suffix}"),
    )
    assert [t["session_id"] for t in (await listed(http, carol))["tasks"]] == [mine]


async def test_a_task_started_by_the_cli_without_an_owner_is_the_operators(
    client: Client, task_queue: str, worker: Worker, suffix: str
) -> None:
    """The README's `temporal workflow start` (a `TaskStatus` search attribute, no owner memo): the operator's key
    (tenant `default`) reads, lists, rates and cancels it like its own; any other key gets 404 and an empty list."""
    operator, other = (
        {"X-API-KEY": f"operator-{suffix}-key-0123456789abcdef"},
        {"X-API-KEY": f"eve-{suffix}-0123456789abcdef"},
    )
    registry = ApiKeyRegistry({"default": operator["X-API-KEY"], f"eve-{suffix}": other["X-API-KEY"]})
    since = datetime.now(UTC).isoformat()
    session_id = f"cli-{uuid.uuid4().hex[:12]}"
    await client.start_workflow(
        "CodingTask",
        {"task_description": "write a function that parses ISO-8601 durations", "code_context": None},
        id=session_id,
        task_queue=task_queue,
        search_attributes=start_search_attributes(),
    )
    async with asgi_client(create_app(gateway_settings(task_queue), client=client, registry=registry)) as http:
        state = await wait_for_status(http, session_id, {"awaiting_feedback"}, operator)
        assert state["session_id"] == session_id
        assert (await http.get(f"/tasks/{session_id}/view", headers=operator)).status_code == 200
        mine = await listed(http, operator, since=since, page_size=100)
        assert session_id in [t["session_id"] for t in mine["tasks"]]
        for path in (f"/status/{session_id}", f"/tasks/{session_id}/view", f"/events/{session_id}"):
            assert (await http.get(path, headers=other)).status_code == 404, path
        assert (await listed(http, other, since=since))["tasks"] == []
        assert (await http.post(f"/feedback/{session_id}", json={"rating": 5}, headers=other)).status_code == 404
        assert (await http.post(f"/feedback/{session_id}", json={"rating": 5}, headers=operator)).status_code == 202
        await wait_for_status(http, session_id, {"completed"}, operator)


async def test_a_namespace_without_the_search_attributes_answers_501(tmp_path: Any) -> None:
    registry = ApiKeyRegistry({"erin": "erin-key-0123456789abcdefXYZ"})
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), dev_server_log_level="error"
    )
    async with env, asgi_client(create_app(gateway_settings("q"), client=env.client, registry=registry)) as http:
        response = await http.get("/tasks", headers={"X-API-KEY": "erin-key-0123456789abcdefXYZ"})
    assert response.status_code == 501
    assert "python -m orchestrator.search_attributes register" in response.json()["detail"]
