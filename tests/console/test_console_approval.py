"""The task page in Chromium with the gateway stubbed: a task waiting for approval of an MCP tool call shows the
call and its arguments, and Approve / Deny send `POST /approve/{session_id}` with the decision and the reason;
the MCP tools the task used are listed with their counts."""

from __future__ import annotations

import json

from playwright.async_api import Route, expect

from api.gateway.routes.console import TaskView, render
from tests.console.conftest import OpenPage, fulfill_ui, open_stubbed_task
from workflows.models import PendingApproval, TaskState, TaskStatus, ToolUsage

ORIGIN = "http://console.test"
ARGUMENTS = {"repo_path": "/srv/repo", "message": "<b>add</b> staged.txt"}


def view(decided: bool) -> str:
    state = TaskState(
        session_id="s-1", task_description="commit it", created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:01Z", task_status=TaskStatus.RUNNING if decided else TaskStatus.AWAITING_APPROVAL,
        tool_usage={"git.git_log": ToolUsage(calls=2), "git.git_commit": ToolUsage(calls=1 if decided else 0)},
    )  # fmt: skip
    if not decided:
        pending = PendingApproval(call_id="call-1", tool="git.git_commit", arguments=ARGUMENTS,
                                  requested_at="2026-01-01T00:00:01Z")  # fmt: skip
        state.pending_approvals.append(pending)
    page = TaskView(session_id="s-1", run_id="r-1", workflow_status="RUNNING", state=state, rendered=render(state),
                    web_ui_url="http://localhost:8233/namespaces/default/workflows/s-1/r-1/history")  # fmt: skip
    return page.model_dump_json()


async def test_a_waiting_call_is_approved_from_the_task_page(open_page: OpenPage) -> None:
    decisions: list[dict[str, object]] = []

    async def gateway(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if await fulfill_ui(route, path):
            return
        if path == "/tasks/s-1/view":
            await route.fulfill(body=view(decided=bool(decisions)), content_type="application/json")
        elif path == "/approve/s-1" and route.request.method == "POST":
            decisions.append(json.loads(route.request.post_data or "{}"))
            decided = {"call_id": "call-1", "tool": "git.git_commit", "arguments": ARGUMENTS, "requested_at": "x"}
            await route.fulfill(body=json.dumps(decided), content_type="application/json")
        else:  # the event stream: nothing yet
            await route.fulfill(body="", content_type="text/event-stream")

    page, watch = await open_stubbed_task(open_page, ORIGIN, "s-1", gateway)

    card = page.locator(".approval")
    await expect(page.locator(".task-meta .badge")).to_have_text("Awaiting approval")
    await expect(card.locator("h2")).to_have_text("git.git_commit waits for your approval")
    await expect(card.locator("pre")).to_have_text(json.dumps(ARGUMENTS, indent=2))  # markup shown as text
    await expect(page.locator("#tools-title + .table-wrap")).to_contain_text("git.git_log")
    await card.locator("input").fill("reviewed the diff")
    await card.get_by_role("button", name="Approve").click()
    await expect(page.locator(".approval")).to_have_count(0)
    assert decisions == [{"call_id": "call-1", "approved": True, "reason": "reviewed the diff"}]
    watch.assert_clean()


INJECTION = '<img src=x onerror="window.injected=1"><script>window.injected=2</script> 12:00 UTC'


def tool_event(event_id: int, data: dict[str, object]) -> str:
    event = {"id": event_id, "at": "2026-01-01T00:00:02Z", "type": "tool_call", "agent": "code_generation",
             "message": f"code_generation called {data['tool']}", "data": data}  # fmt: skip
    return f"id: {event_id}\nevent: tool_call\ndata: {json.dumps(event)}\n\n"


STREAM = "".join([
    tool_event(1, {"tool": "mcp_list_tools", "offered": ["time.get_current_time", "git.git_log"]}),
    tool_event(2, {"tool": "time.get_current_time", "server": "time", "is_error": False, "result": INJECTION}),
    tool_event(3, {"tool": "lint", "is_error": False, "result": "pylint score: 10.00/10"}),  # built in: not MCP
    tool_event(4, {"tool": "git.git_log", "server": "git", "is_error": True, "result": "x" * 1000}),
])  # fmt: skip


async def test_each_mcp_call_is_shown_with_its_result_as_text(open_page: OpenPage) -> None:
    """A result is a tool server's text: markup in it is shown, never run; a long one is cut; built-in tools' calls
    and the tool list are not MCP calls."""
    streams = 0

    async def gateway(route: Route) -> None:
        nonlocal streams
        path = route.request.url.removeprefix(ORIGIN)
        if await fulfill_ui(route, path):
            return
        if path == "/tasks/s-1/view":
            await route.fulfill(body=view(decided=True), content_type="application/json")
        else:  # the event stream: the calls once, then nothing more
            streams += 1
            await route.fulfill(body=STREAM if streams == 1 else "", content_type="text/event-stream")

    page, watch = await open_stubbed_task(open_page, ORIGIN, "s-1", gateway)

    calls = page.locator(".mcp-calls > li")
    await expect(calls).to_have_count(2)
    await expect(calls.nth(0).locator(".facts")).to_contain_text("time.get_current_time · code_generation")
    await expect(calls.nth(0).locator("pre")).to_have_text(INJECTION)  # the markup as characters
    await expect(page.locator(".mcp-calls img, .mcp-calls script")).to_have_count(0)
    assert await page.evaluate("window.injected") is None
    await expect(calls.nth(1)).to_have_class("mcp-call error")
    await expect(calls.nth(1).locator(".facts")).to_contain_text("git.git_log · code_generation")
    await expect(calls.nth(1).locator("pre")).to_have_text("x" * 300 + "…")
    await expect(page.locator("#tools-title + .table-wrap")).to_contain_text("git.git_log")  # the counts stay
    watch.assert_clean()
