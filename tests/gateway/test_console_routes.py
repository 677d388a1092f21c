"""The console's routes over HTTP: its files with their security headers, the task view with a hostile model answer
rendered inert, the tenant rules, and /docs and /redoc served from local files."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from api.gateway.routes.console import CONSOLE_CSP, UI_DIR
from testbed.llm_server import FakeLlmServer, Fault
from tests.gateway.support import ALICE, BOB, asgi_client, assert_inert, make_app, wait_for_status
from workflows.models import ACCEPTED_RATING, TERMINAL_STATUSES, EventType, TaskStatus

PAYLOAD = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
HOSTILE_DOCS = f"# Docs {PAYLOAD}\n\n[run](javascript:window.pwned=3)\n\n<iframe src=https://evil.example></iframe>\n"


@pytest.fixture
async def http(client: Client, task_queue: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(make_app(task_queue, client, temporal_ui_url="https://temporal-ui.example/")) as http:
        yield http


def anthropic_text(text: str) -> str:
    """An Anthropic Messages reply whose answer is `text` (what the fake server sends instead of its own)."""
    reply: dict[str, object] = {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6"}
    reply |= {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None}
    return json.dumps(reply | {"usage": {"input_tokens": 10, "output_tokens": 10}})


async def test_the_page_reads_the_task_contract_from_the_models_and_restates_none_of_it(
    http: httpx.AsyncClient,
) -> None:
    reply = await http.get("/ui/contract.js")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/javascript")
    assert reply.headers["content-security-policy"] == CONSOLE_CSP
    exports = {name: json.loads(value) for name, value in re.findall(r"^export const (\w+) = (.*);$", reply.text, re.M)}
    assert exports["STATUS"] == {status.name: status.value for status in TaskStatus}
    assert set(exports["ENDED"]) == TERMINAL_STATUSES
    assert exports["EVENT"]["LLM_DELTA"] == EventType.LLM_DELTA and exports["EVENT"]["GAP"] == "gap"
    assert exports["RATING"] == {"min": 1, "max": 5, "accepted": ACCEPTED_RATING}
    page = "".join(path.read_text(encoding="utf-8") for path in UI_DIR.glob("*.js"))
    restated = [status.value for status in TaskStatus if f'"{status.value}"' in page]
    assert not restated, f"task statuses written in the page instead of read from contract.js: {restated}"


async def test_the_console_files_come_with_a_strict_policy(http: httpx.AsyncClient) -> None:
    redirect = await http.get("/ui")
    assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/ui/")
    page = await http.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == (UI_DIR / "index.html").read_text()
    assert page.headers["content-security-policy"] == CONSOLE_CSP
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script_src = re.search(r"script-src ([^;]*)", CONSOLE_CSP)
    assert script_src and script_src.group(1) == "'self'"  # no unsafe-inline, no eval, no other origin
    assert "http" not in CONSOLE_CSP and "unsafe" not in CONSOLE_CSP and "*" not in CONSOLE_CSP
    assert not re.search(r"<script>|\son\w+=|style=", page.text)  # nothing inline the policy would block
    for asset in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text):
        answer = await http.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["content-security-policy"] == CONSOLE_CSP
    modules = [p.name for p in UI_DIR.glob("*.js")]
    for name in modules:
        assert (await http.get(f"/ui/{name}")).headers["content-type"].startswith("text/javascript"), name
        assert not re.search(r"https?://", (UI_DIR / name).read_text()), f"{name} names another origin"
    missing = await http.get("/ui/nothing-here.js")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}


async def test_the_api_pages_load_their_scripts_from_the_gateway(http: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await http.get(path)
        assert page.status_code == 200
        urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
        for url in urls:
            assert (await http.get(url)).status_code == 200, url
        policy = page.headers["content-security-policy"]
        for script in re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL):  # allowed by hash, exactly
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "/docs" not in (await http.get("/openapi.json")).json()["paths"]


async def test_the_task_view_renders_a_hostile_model_answer_inert(
    http: httpx.AsyncClient, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    fake_llm.add_fault("anthropic", Fault(body=anthropic_text(HOSTILE_DOCS), match="technical writer"))
    session_id = f"view-{uuid.uuid4().hex[:10]}"
    body = {"task_description": f"write an add function {PAYLOAD}", "session_id": session_id,
            "feedback_window_seconds": 60}  # fmt: skip
    assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
    await wait_for_status(http, session_id, {"awaiting_feedback"}, ALICE)

    view = await http.get(f"/tasks/{session_id}/view", headers=ALICE)
    assert view.status_code == 200
    data = view.json()
    assert data["state"]["results"]["documentation"]["documentation"] == HOSTILE_DOCS.strip()  # as the model said
    docs = data["rendered"]["docs_html"]
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in docs  # shown as text
    assert_inert(docs)
    assert '<span class="k">def</span>' in data["rendered"]["code_html"]
    assert data["rendered"]["plan_html"].startswith('<div class="markdown hl">')
    assert data["run_id"] and data["workflow_status"] == "RUNNING"
    assert data["web_ui_url"] == (
        f"https://temporal-ui.example/namespaces/default/workflows/{session_id}/{data['run_id']}/history"
    )
    assert data["state"] == (await http.get(f"/status/{session_id}", headers=ALICE)).json()

    # the tenant rules of every other route: another key's view is a 404 like an unknown id, no key a 401
    assert (await http.get(f"/tasks/{session_id}/view", headers=BOB)).status_code == 404
    assert (await http.get("/tasks/no-such-task/view", headers=ALICE)).status_code == 404
    assert (await http.get(f"/tasks/{session_id}/view")).status_code == 401
    assert (await http.get("/tasks/bad%20id/view", headers=ALICE)).status_code == 422
    assert (await http.post(f"/cancel/{session_id}", headers=ALICE)).status_code == 202


async def test_the_view_has_the_rate_limit_of_the_api(client: Client, task_queue: str) -> None:
    async with asgi_client(make_app(task_queue, client, gateway_rate_limit="2/minute")) as http:
        assert (await http.get("/tasks/none-1/view", headers=ALICE)).status_code == 404
        assert (await http.get("/tasks", headers=ALICE)).status_code == 200
        limited = await http.get("/tasks/none-1/view", headers=ALICE)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert (await http.get("/ui/")).status_code == 200  # the files carry no tenant data: not counted
