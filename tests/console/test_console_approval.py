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
