"""The task page in Chromium with the gateway stubbed: what it shows of a stream that carries `llm_delta` events
(the failed attempt's text dropped, the retried one's shown) and of code with pylint messages on its lines. The
real stack cannot produce either on demand (its offline model writes lint-clean code, its stream no deltas yet);
the view it is given is rendered by the gateway's own code (`routes.console.render`)."""

from __future__ import annotations

import json

from playwright.async_api import Route, expect

from api.gateway.routes.console import GENERATED, SECURITY_HEADERS, UI_DIR, TaskView, render
from tests.console.conftest import OpenPage
from workflows.models import (
    CodeResult,
    LintMessage,
    LintResult,
    TaskState,
    TaskStatus,
    TestFailure,
    TestGate,
    TestReport,
    TestRound,
)

ORIGIN = "http://console.test"
CODE = "def add(a, b):\n    return a + secnd\n"


def view() -> str:
    state = TaskState(
        session_id="s-1", task_description="write an add function", task_status=TaskStatus.RUNNING,
        created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:01Z", plan="1. **Add** it",
    )  # fmt: skip
    lint = LintResult(score=3.5, messages=[
        LintMessage(line=2, column=15, symbol="undefined-variable", message_id="E0602", type="error",
                    message="Undefined variable 'secnd'"),
    ])  # fmt: skip
    failure = TestFailure(test="test_solution.py::test_add", message="assert add(1, 2) == 3\n<script>alert(1)</script>")
    tests = TestReport(outcome="failed", passed=3, failed=1, failures=[failure], duration_ms=812)
    state.results.code_generation = CodeResult(
        code=CODE, model="offline", lint=lint, tests=tests, tests_by="user", test_gate=TestGate.FAILED,
        test_rounds=[TestRound(round=1, passed_before=2, failed_before=2, passed_after=3, failed_after=1)],
    )  # fmt: skip
    page = TaskView(session_id="s-1", run_id="r-1", workflow_status="RUNNING", state=state, rendered=render(state),
                    web_ui_url="http://localhost:8233/namespaces/default/workflows/s-1/r-1/history")  # fmt: skip
    return page.model_dump_json()


def sse(*events: tuple[str, dict[str, object], int | None]) -> str:
    return "".join(
        (f"id: {i}\n" if i else "") + f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data, i in events
    )


def delta(attempt: int, text: str) -> tuple[str, dict[str, object], None]:
    data = {"role": "code_generation", "step": 1, "attempt": attempt, "text": text}
    return "llm_delta", {"type": "llm_delta", "agent": "code_generation", "data": data}, None


STREAM = sse(
    ("route", {"id": 1, "at": "2026-01-01T00:00:00Z", "type": "route", "message": "supervisor routes to code"}, 1),
    delta(1, "def add(a, b):\n    ret"),
    delta(2, "def add(a, b):\n"),
    delta(1, "urn a + b  # late, from the failed attempt"),
    delta(2, "    return a + b\n"),
    ("timeout", {"detail": "stream time limit reached"}, None),
)


async def test_the_task_page_shows_live_output_and_pylint_messages_per_line(open_page: OpenPage) -> None:
    calls: list[str] = []

    async def gateway(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        calls.append(path)
        headers = dict(SECURITY_HEADERS)
        if path.startswith("/ui/"):
            name = path.removeprefix("/ui/") or "index.html"
            kind = {"js": "text/javascript", "css": "text/css", "html": "text/html", "svg": "image/svg+xml"}
            body = GENERATED[name][1]() if name in GENERATED else (UI_DIR / name).read_text()
            await route.fulfill(body=body, content_type=kind[name.rsplit(".", 1)[1]], headers=headers)
        elif path == "/tasks/s-1/view":
            await route.fulfill(body=view(), content_type="application/json")
        elif (
            path.startswith("/events/s-1")
            and path.count("/events/")
            and len([c for c in calls if "/events/" in c]) == 1
        ):
            await route.fulfill(body=STREAM, content_type="text/event-stream")
        else:  # later stream requests: nothing more yet (the page keeps retrying; the test is done by then)
            await route.fulfill(body="", content_type="text/event-stream")

    page, watch = await open_page(ORIGIN)
    await page.route(f"{ORIGIN}/**", gateway)
    await page.goto(f"{ORIGIN}/ui/")
    await page.evaluate("sessionStorage.setItem('orchestrator.apiKey', 'k')")
    await page.goto(f"{ORIGIN}/ui/#/tasks/s-1")

    live = page.locator(".live-block pre")
    await expect(live).to_have_text("def add(a, b):\n    return a + b\n")  # attempt 2 only, nothing of attempt 1
    await expect(page.locator(".live-block figcaption")).to_contain_text("code_generation · step 1 · attempt 2")
    flagged = page.locator("#code-line-2")
    await expect(flagged).to_have_class("code-line flagged")
    await expect(flagged.locator(".lint")).to_contain_text("E0602 undefined-variable Undefined variable 'secnd'")
    await expect(page.locator("#code-line-1 .lint")).to_have_count(0)
    await expect(page.locator(".rendered.plan strong")).to_have_text("Add")
    report = page.locator(".test-report")  # beside pylint's verdict, above the code
    await expect(report.locator(".facts")).to_have_text(
        "tests 3 passed, 1 failed · the task's tests · test gate failed · 812 ms"
    )
    await expect(report.locator("tbody tr td")).to_have_text(["1", "2", "2", "3", "1"])
    await expect(report.locator(".test-id")).to_have_text("test_solution.py::test_add")
    await expect(report.locator(".test-failures pre")).to_have_text("assert add(1, 2) == 3\n<script>alert(1)</script>")
    await expect(report.locator("script")).to_have_count(0)  # the test output's markup stays text
    assert any(c.startswith("/events/s-1?after=1") for c in calls)  # the `timeout` reconnected after event 1
    watch.assert_clean()
