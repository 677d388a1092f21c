"""The console in a real browser against the stack `make run` starts (offline model, two tenants): sign in, start a
task from the form, follow it, read its plan, code and docs, rate it, cancel another, raise a budget, survive a
dropped connection, find the tasks in the list, and see none of it with another tenant's key. Markup injected
through a task description and through model answers never runs. Every page is watched: a script error, a CSP
violation or a request to another origin fails the test.

`make screenshots` runs this module with CONSOLE_SCREENSHOTS=docs: the README's pictures come from this run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from api.gateway.routes.console import SECURITY_HEADERS
from launcher.stack import ensure_env_file, load_env_file
from tests.console.conftest import LAPTOP, PHONE, OpenPage
from tests.gateway.support import TcpProxy
from tests.stack.launcher import RunningStack, stack_env
from tests.stack.test_stack import curl_commands, readme_section_blocks
from tests.support import BOB_KEY, ROOT, TEST_API_KEY, free_port

SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")  # a folder: save the README's screenshots there
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
WAIT = 90_000  # ms: a step of the offline model on a loaded 2-core machine

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`make run`'s launcher on free ports with a second tenant (bob); everything it started dies at the end."""
    tmp = tmp_path_factory.mktemp("console-stack")
    env = {**stack_env(tmp), "ORCHESTRATOR_API_KEYS": f"bob={BOB_KEY}"}
    running = RunningStack.start(tmp, env=env)
    try:
        running.wait_until_up()
        yield running
    finally:
        running.kill_everything()


@pytest.fixture(scope="module")
def base(stack: RunningStack) -> str:
    return f"http://127.0.0.1:{stack.env['GATEWAY_PORT']}"


async def sign_in(page: Page, base: str, key: str) -> None:
    """With the keyboard only: the key field has the focus, Enter submits."""
    await page.goto(f"{base}/ui/")
    await expect(page.locator("#api-key")).to_be_focused()
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    await expect(page.locator("#page-title")).to_have_text("My tasks")


async def start_from_form(page: Page, description: str, **advanced: str) -> str:
    """Fill the start form (advanced fields by name, e.g. budget_tokens="500"); returns the new session id."""
    await page.get_by_role("link", name="New task", exact=True).first.click()
    await page.locator("#field-task_description").fill(description)
    if advanced:
        await page.locator("details summary").click()
        for name, value in advanced.items():
            await page.locator(f"#field-{name}").fill(value)
    await page.get_by_role("button", name="Start task").click()
    await page.wait_for_url(re.compile(r"#/tasks/[^/]+$"))
    return page.url.rsplit("/", 1)[1]


async def status_is(page: Page, label: str) -> None:
    await expect(page.locator(".task-meta .badge")).to_have_text(label, timeout=WAIT)


async def event_ids(page: Page) -> list[int]:
    ids = await page.locator(".progress li[data-event-id]").evaluate_all("els => els.map(e => e.dataset.eventId)")
    return [int(i) for i in ids if i]


async def recorded_events(base: str, session_id: str) -> int:
    """How many progress events the task has recorded (its status's `logs`, one line per event), to compare with
    the page's: model-output deltas are numbered on the same stream, so progress ids skip theirs."""
    async with httpx.AsyncClient(base_url=base, headers={"X-API-KEY": TEST_API_KEY}) as http:
        reply = await http.get(f"/status/{session_id}")
    reply.raise_for_status()
    return len(reply.json()["logs"])


def in_order_once(ids: list[int]) -> bool:
    return ids == sorted(set(ids))


def save(name: str) -> str | None:
    return str(Path(SHOTS) / f"console-{name}.png") if SHOTS else None


async def test_a_reviewer_starts_follows_rates_and_finds_tasks_and_another_key_sees_none(
    open_page: OpenPage, base: str, stack: RunningStack
) -> None:
    page, watch = await open_page(base)
    await sign_in(page, base, TEST_API_KEY)
    assert await page.evaluate("sessionStorage.getItem('orchestrator.apiKey')") == TEST_API_KEY
    assert TEST_API_KEY not in page.url

    # the first stream request fails to connect: the page retries by itself
    refused = {"n": 0}

    async def refuse_once(route: Any) -> None:
        refused["n"] += 1
        await (route.abort("connectionreset") if refused["n"] == 1 else route.continue_())

    await page.route("**/events/**", refuse_once)
    rated = await start_from_form(page, "write a function that parses ISO-8601 durations")
    await status_is(page, "Awaiting feedback")
    assert refused["n"] >= 2
    ids = await event_ids(page)
    assert in_order_once(ids) and len(ids) == await recorded_events(base, rated) > 10  # every event once, in order

    await expect(page.locator(".rendered.plan")).to_contain_text("Understand the task")
    code = page.locator(".code-view .code-line")
    assert await code.count() > 5
    await expect(page.locator(".code-view")).to_contain_text("def parses_iso_durations")
    assert await page.locator(".code-view .hl span.k, .code-view span.k").count() > 0  # highlighted
    await expect(page.locator("#code-title + .facts")).to_contain_text("pylint 10")
    await expect(page.locator(".rendered.docs h1")).to_contain_text("Documentation")
    await expect(page.locator(".cost")).to_have_text("$0.0000")
    link = page.locator("a.web-ui-link")
    href = await link.get_attribute("href") or ""
    ui_port = stack.env["TEMPORAL_UI_PORT"]
    assert re.fullmatch(rf"http://localhost:{ui_port}/namespaces/default/workflows/{rated}/[0-9a-f-]+/history", href)
    assert await link.get_attribute("rel") == "noopener noreferrer"
    web_ui = await asyncio.to_thread(httpx.get, href.replace("localhost", "127.0.0.1"), timeout=10)
    assert web_ui.status_code == 200  # the Web UI answers the link

    # rate 4 with the keyboard: arrows choose the star, Tab moves on, Enter sends
    await page.locator("input[name=rating][value='1']").focus()
    for _ in range(3):
        await page.keyboard.press("ArrowRight")
    await page.keyboard.press("Tab")
    await page.keyboard.type("clear and correct")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await status_is(page, "Completed")
    await expect(page.locator("#feedback-title + ul")).to_contain_text("4/5")
    await expect(page.locator("#feedback-title + ul")).to_contain_text("clear and correct")
    await expect(page.locator(".progress li.event-feedback")).to_have_count(1)  # the stream followed on
    after_rating = await event_ids(page)
    assert in_order_once(after_rating) and len(after_rating) == await recorded_events(base, rated) > len(ids)

    cancelled = await start_from_form(page, "write a slugify function")
    await page.get_by_role("button", name="Cancel task").click()
    await page.get_by_role("button", name="Yes, cancel it").click()
    await status_is(page, "Cancelled")

    await page.get_by_role("link", name="My tasks", exact=True).first.click()
    rows = page.locator("table.tasks tbody tr")
    await expect(page.locator(f"tr[data-session='{rated}'] .badge")).to_have_text("Completed")
    await expect(page.locator(f"tr[data-session='{rated}']")).to_contain_text("4/5")
    await expect(page.locator(f"tr[data-session='{cancelled}'] .badge")).to_have_text("Cancelled")
    await page.locator(".filters button[data-status=completed]").click()
    await expect(page.locator(f"tr[data-session='{cancelled}']")).to_have_count(0)
    await expect(page.locator(f"tr[data-session='{rated}']")).to_have_count(1)
    assert "status=completed" in page.url
    watch.assert_clean()

    # another tenant's key: neither task in its list, and a direct link is "not found"
    other, other_watch = await open_page(base)
    await sign_in(other, base, BOB_KEY)
    await expect(other.locator("p.empty")).to_be_visible()
    assert await other.locator("table.tasks tbody tr").count() == 0
    await other.goto(f"{base}/ui/#/tasks/{rated}")
    await expect(other.locator("#page-title")).to_have_text("Task not found")
    other_watch.assert_clean()
    assert await rows.count() >= 1


async def test_a_budget_raise_and_a_dropped_connection(open_page: OpenPage, stack: RunningStack) -> None:
    proxy = TcpProxy(f"127.0.0.1:{stack.env['GATEWAY_PORT']}", free_port())  # the browser's way to the gateway
    await proxy.start()
    origin = f"http://127.0.0.1:{proxy.port}"
    try:
        page, watch = await open_page(origin)
        await sign_in(page, origin, TEST_API_KEY)
        session_id = await start_from_form(page, "write a function that merges two sorted lists", budget_tokens="500")
        await status_is(page, "Awaiting budget")
        await expect(page.locator(".connection")).to_have_text("live")
        before = await event_ids(page)

        await proxy.stop()  # every connection through it drops, the event stream included
        await expect(page.locator(".connection")).to_contain_text("retrying", timeout=WAIT)
        await proxy.start()
        await expect(page.locator(".connection")).to_have_text("live", timeout=WAIT)

        await expect(page.locator(".budget")).to_contain_text("The budget is used up")
        await page.locator("#budget-tokens").fill("1000000")
        await page.get_by_role("button", name="Raise budget").click()
        await status_is(page, "Awaiting feedback")  # read by a refresh: the stream's last events may still come
        recorded = await recorded_events(origin, session_id)
        await expect(page.locator(".progress li[data-event-id]:not([data-event-id=''])")).to_have_count(
            recorded, timeout=WAIT
        )  # nothing missed
        ids = await event_ids(page)
        assert ids[: len(before)] == before and in_order_once(ids)  # resumed, nothing twice
        assert "budget_raised" in await page.locator(".progress").inner_text()
        await expect(page.locator("dl.totals")).to_contain_text("of 1,000,000")
        watch.assert_clean()
    finally:
        await proxy.stop()


async def test_markup_in_a_description_and_in_model_answers_never_runs(open_page: OpenPage, base: str) -> None:
    page, watch = await open_page(base)
    await sign_in(page, base, TEST_API_KEY)
    session_id = await start_from_form(page, f"write a parser {PAYLOAD}")
    await status_is(page, "Awaiting feedback")
    # the offline model repeats the description in its plan and in the code's docstring: model answers carrying it
    await expect(page.locator("#page-title")).to_have_text(f"write a parser {PAYLOAD}")
    await expect(page.locator(".rendered.plan")).to_contain_text(PAYLOAD)
    await expect(page.locator(".code-view")).to_contain_text("<img src=x onerror=")
    await expect(page.locator(".progress")).to_contain_text("<script>")
    await page.get_by_role("link", name="My tasks", exact=True).first.click()
    await expect(page.locator(f"tr[data-session='{session_id}'] .task-link")).to_have_text(f"write a parser {PAYLOAD}")

    for view in (f"#/tasks/{session_id}", "#/tasks"):
        await page.goto(f"{base}/ui/{view}")
        await page.wait_for_selector("#page-title")
        await page.wait_for_timeout(500)
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("img").count() == 0  # the console shows no image: none was injected
        scripts = await page.locator("script").evaluate_all("els => els.map(e => e.getAttribute('src'))")
        assert scripts == ["/ui/console.js"]
        assert await page.locator("[onerror], [onload], [onclick]").count() == 0
    watch.assert_clean()  # not even a blocked attempt: the markup never became elements


async def test_the_policy_itself_blocks_inline_script_and_raw_markup(open_page: OpenPage, base: str) -> None:
    """The second line of defence, checked on its own: were some text ever to become markup, it could not run."""
    page, watch = await open_page(base)
    await page.goto(f"{base}/ui/")
    await page.wait_for_selector("#api-key")
    outcome = await page.evaluate(
        """() => {
          const tried = {};
          const img = "<img src=x onerror='window.__ran = 1'>";
          try { document.body.insertAdjacentHTML("beforeend", img); tried.html = 1; }
          catch (e) { tried.html = e.name; }
          const script = document.createElement("script");
          try { script.textContent = "window.__ran = 2"; document.body.append(script); tried.script = 1; }
          catch (e) { tried.script = e.name; }
          return tried;
        }"""
    )
    await page.wait_for_timeout(300)
    assert outcome == {"html": "TypeError", "script": "TypeError"}  # Trusted Types: no raw markup, no script text
    assert await page.evaluate("window.__ran") is None
    assert any("TrustedHTML" in v for v in watch.violations) and any("TrustedScript" in v for v in watch.violations)

    # markup that reached a document with the console's policy: an inline script and handlers never run
    probe, probe_watch = await open_page(base)
    markup = "<script>window.__ran = 4</script><img src=x onerror='window.__ran = 5'>"
    markup += "<a id=a onclick='window.__ran = 6'>a</a>"

    async def page_with_the_console_policy(route: Any) -> None:
        await route.fulfill(body=f"<!doctype html><body>{markup}</body>", content_type="text/html",
                            headers=SECURITY_HEADERS)  # fmt: skip

    await probe.route(f"{base}/ui/probe.html", page_with_the_console_policy)
    await probe.goto(f"{base}/ui/probe.html")
    await probe.locator("#a").click()
    await probe.wait_for_timeout(300)
    assert await probe.evaluate("window.__ran") is None
    refused = " ".join(probe_watch.violations)
    assert "inline script" in refused and "inline event handler" in refused, probe_watch.violations


async def test_the_api_pages_work_with_no_third_party(open_page: OpenPage, base: str) -> None:
    page, watch = await open_page(base)
    await page.goto(f"{base}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Coding Orchestrator gateway", timeout=WAIT)
    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    await page.goto(f"{base}/redoc")
    await expect(page.locator("h1").first).to_contain_text("Coding Orchestrator gateway", timeout=WAIT)
    await expect(page.get_by_text("The caller's tasks, newest first").first).to_be_attached()
    assert not watch.sent_elsewhere and not watch.errors, watch  # nothing fetched from elsewhere, no script error
    # ReDoc always asks for its makers' logo from their CDN; the page's CSP refuses it, and that is all
    assert watch.blocked == ["https://cdn.redoc.ly/redoc/logo-mini.svg"], watch.blocked
    assert all("cdn.redoc.ly" in v for v in watch.violations), watch.violations


async def test_laptop_and_phone_widths(open_page: OpenPage, base: str) -> None:
    """Readable at both widths (no sideways scrolling); with CONSOLE_SCREENSHOTS the README's pictures."""
    headers = {"X-API-KEY": TEST_API_KEY}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        shown = (await http.post("/invoke?stream=false", json={
            "task_description": "write a function that parses ISO-8601 durations such as PT1H30M into seconds",
            "code_context": "def to_seconds(duration: str) -> int: ..."})).json()["session_id"]  # fmt: skip
        await wait_for(http, shown, "awaiting_feedback")

    laptop, watch = await open_page(base, viewport=LAPTOP)
    await sign_in(laptop, base, TEST_API_KEY)
    await expect(laptop.locator(f"tr[data-session='{shown}']")).to_have_count(1)
    await assert_fits(laptop)
    await laptop.screenshot(path=save("tasks"))
    await laptop.goto(f"{base}/ui/#/tasks/{shown}")
    await expect(laptop.locator(".rendered.docs")).to_be_visible(timeout=WAIT)
    await assert_fits(laptop)
    await laptop.screenshot(path=save("task"), full_page=True)
    watch.assert_clean()

    phone, phone_watch = await open_page(base, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    await sign_in(phone, base, TEST_API_KEY)
    await assert_fits(phone)
    await phone.goto(f"{base}/ui/#/tasks/{shown}")
    await expect(phone.locator(".rendered.docs")).to_be_visible(timeout=WAIT)
    await assert_fits(phone)
    await phone.screenshot(path=save("phone"))
    phone_watch.assert_clean()


def test_the_readme_console_commands_run_as_written(base: str, stack: RunningStack, tmp_path: Path) -> None:
    opening, listing = readme_section_blocks("console")
    start, key_line = [line.split("#")[0].strip() for line in opening.strip().splitlines()]
    assert start == "make run"  # what the `stack` fixture runs: the Makefile's `run` target, the launcher
    assert "$(BIN)/python -m launcher.stack" in (ROOT / "Makefile").read_text().split("\nrun:", 1)[1]
    ensure_env_file(tmp_path / ".env")  # the .env `make run` writes on first use, read by the README's line
    written = load_env_file(tmp_path / ".env")["ORCHESTRATOR_API_KEY"]
    shown = subprocess.run(["bash", "-euo", "pipefail", "-c", key_line], cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == written, shown
    ui = httpx.get(f"{base}/ui", follow_redirects=True, timeout=10)  # the address the README names, on our port
    assert ui.status_code == 200 and "console.js" in ui.text

    # a task of this test's own, so the listing has one whatever ran before
    with httpx.Client(base_url=base, headers={"X-API-KEY": TEST_API_KEY}, timeout=30) as http:
        mine = http.post("/invoke?stream=false", json={"task_description": "write an add function"}).json()
    commands = curl_commands(listing)
    assert len(commands) == 2, listing
    for _ in range(400):  # until the task waits for feedback and visibility lists it (a minute or two at worst)
        outputs = []
        for command in commands:
            script = command.replace("localhost:8002", f"127.0.0.1:{stack.env['GATEWAY_PORT']}")
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env={**os.environ, "KEY": TEST_API_KEY},
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
            assert run.returncode == 0 and '"detail"' not in run.stdout, (script, run.stdout, run.stderr)
            outputs.append(json.loads(run.stdout))
        if all(mine["session_id"] in {t["session_id"] for t in output["tasks"]} for output in outputs):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"{mine} never listed as awaiting feedback: {outputs}")
    assert {t["task_status"] for t in outputs[1]["tasks"]} <= {"awaiting_feedback", "awaiting_budget"}


async def wait_for(http: httpx.AsyncClient, session_id: str, status: str) -> None:
    for _ in range(300):
        if (await http.get(f"/status/{session_id}")).json().get("task_status") == status:
            return
        await asyncio.sleep(0.3)
    pytest.fail(f"{session_id} never reached {status}")


async def assert_fits(page: Page) -> None:
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
