"""The console's stream client (ui/stream.js) in Chromium, against a stubbed fetch: the SSE parser, resuming after a
dropped connection without repeats, the gateway's `timeout` / `error` / 5xx / 401 answers, and live model output
from `llm_delta` events, where a retried attempt's text replaces the failed one's. No server: the stubs stand in
for the gateway's stream, so every way a connection can end is tried in milliseconds.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, Route

from api.gateway.routes.console import GENERATED, UI_DIR
from tests.console.conftest import OpenPage

ORIGIN = "http://console.test"
# Stubs for the tests' scripts: `sse(...)` writes events as the gateway does, `response(chunks, {fail})` is a
# streaming Response that ends, or errors like a dropped connection, after its chunks; `stubFetch(list)` answers
# each call with the next item (an Error is thrown, like fetch does when it cannot connect) and records calls.
STUBS = """
export const sse = (...events) => events.map(([event, data, id]) =>
  (id === undefined ? "" : `id: ${id}\\n`) + `event: ${event}\\ndata: ${JSON.stringify(data)}\\n\\n`).join("");
export function response(chunks, { fail = false, status = 200, headers = {} } = {}) {
  const encoder = new TextEncoder();
  const left = [...chunks];
  const body = new ReadableStream({
    pull(controller) {  // one chunk per read, so the reader sees every chunk before the end or the error
      if (left.length) controller.enqueue(encoder.encode(left.shift()));
      else if (fail) controller.error(new TypeError("network error"));
      else controller.close();
    },
  });
  return new Response(body, { status, headers: { "Content-Type": "text/event-stream", ...headers } });
}
export function stubFetch(answers) {
  const calls = [];
  const fetchFn = async (url, init) => {
    calls.push({ url, lastEventId: init.headers["Last-Event-ID"], key: init.headers["X-API-KEY"] });
    const next = answers.shift();
    if (next === undefined) throw new Error("no more stubbed answers");
    if (next instanceof Error) throw next;
    return typeof next === "function" ? next() : next;
  };
  return { fetchFn, calls };
}
export const event = (id, type, extra = {}) =>
  ({ id, at: "2026-01-01T00:00:00Z", type, message: `${type} ${id}`, agent: null, data: {}, ...extra });
"""


async def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    if path.startswith("/ui/") and path.removeprefix("/ui/") in GENERATED:
        media_type, make = GENERATED[path.removeprefix("/ui/")]
        await route.fulfill(body=make(), content_type=media_type)
    elif path.startswith("/ui/"):
        file = UI_DIR / path.removeprefix("/ui/")
        await route.fulfill(body=file.read_bytes(), content_type="text/javascript")
    elif path == "/test/stubs.js":
        await route.fulfill(body=STUBS, content_type="text/javascript")
    else:
        await route.fulfill(body="<!doctype html><title>stream tests</title>", content_type="text/html")


@pytest.fixture
async def page(open_page: OpenPage) -> Page:
    page, _ = await open_page(ORIGIN)
    await page.route(f"{ORIGIN}/**", _serve)
    await page.goto(f"{ORIGIN}/")
    return page


async def run(page: Page, body: str) -> Any:
    """Run `body` (an async function body) with stream.js and the stubs imported; returns what it returns."""
    script = f"""async () => {{
      const {{ followTask, LiveOutput, StreamRefused, sseParser }} = await import("/ui/stream.js");
      const {{ sse, response, stubFetch, event }} = await import("/test/stubs.js");
      const noSleep = async () => {{}};
      {body}
    }}"""
    return await page.evaluate(script)


async def test_the_parser_reads_events_split_anywhere(page: Page) -> None:
    events = await run(
        page,
        """
        const feed = sseParser();
        const text = ": ping\\r\\nid: 7\\r\\nevent: plan\\r\\ndata: {\\"a\\":\\r\\ndata: 1}\\r\\n\\r\\n"
          + "event: end\\ndata: x\\n\\n" + "data: no type\\r\\rdata\\n\\n";
        const out = [];
        for (const size of [1, 2, 3, 5, 64]) {  // every way of cutting the text into chunks reads the same
          const f = sseParser();
          const got = [];
          for (let i = 0; i < text.length; i += size) got.push(...f(text.slice(i, i + size)));
          out.push(JSON.stringify(got));
        }
        return { same: new Set(out).size === 1, events: JSON.parse(out[0]) };
        """,
    )
    assert events["same"]
    assert events["events"] == [
        {"event": "plan", "data": '{"a":\n1}', "id": "7"},
        {"event": "end", "data": "x", "id": None},  # an event's id is its own `id:` line only
        {"event": "message", "data": "no type", "id": None},
        {"event": "message", "data": "", "id": None},  # a bare `data` line is an empty data field
    ]


async def test_a_dropped_connection_resumes_after_the_last_event_without_repeats(page: Page) -> None:
    result = await run(
        page,
        """
        const { fetchFn, calls } = stubFetch([
          response([sse(["started", event(1, "started"), 1], ["plan", event(2, "plan"), 2])], { fail: true }),
          new TypeError("Failed to fetch"),                          // the gateway is unreachable for a moment
          response([sse(["plan", event(2, "plan"), 2], ["route", event(3, "route"), 3],
                        ["status", event(4, "status"), 4]).slice(0, -7)]),  // stops inside event 4
          response([sse(["route", event(3, "route"), 3], ["status", event(4, "status"), 4],
                        ["end", { session_id: "s", task_status: "awaiting_feedback" }])]),
        ]);
        const seen = [], connection = [];
        const outcome = await followTask({
          sessionId: "s 1", key: "k", fetchFn, sleep: noSleep,
          onEvent: (e) => seen.push([e.id, e.type]), onConnection: (c) => connection.push(c.state),
        });
        return { outcome, seen, calls, connection };
        """,
    )
    assert result["seen"] == [[1, "started"], [2, "plan"], [3, "route"], [4, "status"]]  # each once, in order
    assert [c["url"] for c in result["calls"]] == [
        "/events/s%201?after=0",
        "/events/s%201?after=2",  # after the drop
        "/events/s%201?after=2",  # after the failed connect
        "/events/s%201?after=3",  # the third stream stopped inside event 4 (2 came again, skipped)
    ]
    assert [c["lastEventId"] for c in result["calls"]] == ["0", "2", "2", "3"]
    assert {c["key"] for c in result["calls"]} == {"k"}
    assert result["outcome"] == {"kind": "end", "state": {"session_id": "s", "task_status": "awaiting_feedback"},
                                 "lastId": 4}  # fmt: skip
    assert result["connection"].count("waiting") == 3 and result["connection"][-1] == "ended"


async def test_timeout_error_and_server_errors_are_retried_and_refusals_are_not(page: Page) -> None:
    result = await run(
        page,
        """
        const delays = [];
        const sleep = async (ms) => delays.push(ms);
        const { fetchFn, calls } = stubFetch([
          response([sse(["started", event(1, "started"), 1], ["timeout", { detail: "stream time limit" }])]),
          response([sse(["error", { detail: "cannot read the task's events" }])]),
          new Response('{"detail":"Temporal is unavailable"}', { status: 503, headers: { "Retry-After": "2" } }),
          new Response('{"detail":"rate limit"}', { status: 429 }),
          response([sse(["end", { task_status: "completed" }])]),
        ]);
        const outcome = await followTask({ sessionId: "s", key: "k", fetchFn, sleep, backoffMs: [10, 20, 40] });
        const refused = stubFetch([new Response('{"detail":"missing or unknown X-API-KEY header"}', { status: 401 })]);
        let error = null;
        try {
          await followTask({ sessionId: "s", key: "bad", fetchFn: refused.fetchFn, sleep });
        } catch (e) {
          error = { refused: e instanceof StreamRefused, status: e.status, message: e.message };
        }
        return { outcome, after: calls.map((c) => c.url), delays, error, refusedCalls: refused.calls.length };
        """,
    )
    assert result["outcome"]["kind"] == "end"
    # `timeout`: again at once; `error`: after the first backoff; 503: after its Retry-After; 429: next backoff
    assert result["delays"] == [10, 2000, 40]
    assert result["after"] == ["/events/s?after=0", "/events/s?after=1", "/events/s?after=1", "/events/s?after=1",
                               "/events/s?after=1"]  # fmt: skip
    assert result["error"] == {"refused": True, "status": 401, "message": "missing or unknown X-API-KEY header"}
    assert result["refusedCalls"] == 1


async def test_live_output_keeps_the_latest_attempt_of_each_call(page: Page) -> None:
    result = await run(
        page,
        """
        const live = new LiveOutput();
        const delta = (step, attempt, text, role = "code_generation") =>
          ({ type: "llm_delta", id: null,
             payload: { type: "llm_delta", agent: role, data: { role, step, attempt, text } } });
        const call = (step, role = "code_generation") =>
          ({ type: "llm_call", id: 9, payload: { type: "llm_call", agent: role, data: { step } } });
        const snap = () => live.blocks.map((b) => [b.role, b.step, b.attempt, b.text, b.done, b.gap]);
        const steps = [];
        live.apply(delta(1, 1, "def f(")); live.apply(delta(1, 1, "x): ret"));
        steps.push(snap());
        live.apply(delta(1, 2, "def f(x):"));        // attempt 1 failed: its partial text goes
        live.apply(delta(1, 1, "stale"));            // a late delta of the failed attempt is ignored
        live.apply(delta(1, 2, " return x"));
        live.apply(delta(1, 1, "plan", "planner"));  // another role's call, alongside
        steps.push(snap());
        live.apply(call(1));                         // the answer arrived: the block is closed
        live.apply(delta(1, 1, "again"));            // a new agent run (a revision) starts step 1 again
        steps.push(snap());
        const changed = live.resumed();              // reconnected: deltas sent meanwhile are not sent again
        steps.push(snap());
        live.apply(delta(1, 1, "!", "planner"));     // the planner's call goes on after the gap
        live.apply(delta(1, 2, "retried", "planner"));  // and is retried: a fresh attempt has no gap
        steps.push(snap());
        const unrelated = live.apply({ type: "plan", id: 3, payload: { type: "plan", data: { plan: "p" } } });
        return { steps, changed, unrelated };
        """,
    )
    first, second, third, resumed, retried = result["steps"]
    assert first == [["code_generation", 1, 1, "def f(x): ret", False, False]]
    assert second == [
        ["code_generation", 1, 2, "def f(x): return x", False, False],
        ["planner", 1, 1, "plan", False, False],
    ]
    assert third == [
        ["code_generation", 1, 2, "def f(x): return x", True, False],
        ["planner", 1, 1, "plan", False, False],
        ["code_generation", 1, 1, "again", False, False],
    ]
    assert resumed == [  # the text stays; the unfinished blocks are marked
        ["code_generation", 1, 2, "def f(x): return x", True, False],
        ["planner", 1, 1, "plan", False, True],
        ["code_generation", 1, 1, "again", False, True],
    ]
    assert retried[1] == ["planner", 1, 2, "retried", False, False]
    assert result["changed"] is True and result["unrelated"] is False


async def test_deltas_carry_their_ids_so_a_reconnect_resumes_after_the_last_one(page: Page) -> None:
    """The gateway numbers deltas on the task's stream like every event: a reconnect resumes after the last
    delta, so the text already shown is not sent again (and appended twice)."""
    result = await run(
        page,
        """
        const delta = (attempt, text) => ["llm_delta", { type: "llm_delta", agent: "documentation",
          data: { role: "documentation", step: 1, attempt, text } }];
        const { fetchFn, calls } = stubFetch([
          response([sse(["llm_call", event(5, "llm_call"), 5], [...delta(1, "# Do"), 6], [...delta(1, "cs"), 7])],
                   { fail: true }),
          response([sse([...delta(2, "# Docs"), 8], ["docs_ready", event(9, "docs_ready"), 9], ["end", {}])]),
        ]);
        const live = new LiveOutput();
        const seen = [];
        await followTask({ sessionId: "s", key: "k", after: 4, fetchFn, sleep: noSleep, onEvent: (e) => {
          seen.push([e.type, e.id]);
          live.apply(e);
        } });
        return { seen, after: calls.map((c) => c.url), text: live.blocks.map((b) => b.text) };
        """,
    )
    assert result["seen"] == [["llm_call", 5], ["llm_delta", 6], ["llm_delta", 7], ["llm_delta", 8],
                              ["docs_ready", 9]]  # fmt: skip
    assert result["after"] == ["/events/s?after=4", "/events/s?after=7"]
    assert result["text"] == ["# Docs"]  # the retried attempt's text, not appended to the failed one's
