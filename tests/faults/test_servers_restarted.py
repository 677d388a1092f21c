"""Servers restarted under a running stack of separate processes (Temporal dev server on its database file,
worker, gateway): the Temporal server restarted mid-task, and the gateway restarted while a client streams."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from testbed.llm_server import FakeLlmServer
from tests.faults.stack import Event, ProcessStack, end_state, sse
from tests.support import wait_until


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restarted", "crashed"])
@pytest.mark.timeout(300)
async def test_tasks_go_on_when_the_temporal_server_restarts_under_the_stack(
    stack: ProcessStack, fake_llm: FakeLlmServer, how: signal.Signals
) -> None:
    fake_llm.hold_after = 2  # planner and the first code turn are served; the second code turn waits
    session = stack.invoke()
    await wait_until(lambda: fake_llm.held >= 1, within=60)

    stack.stop_temporal(how)  # the same database file and port when it comes back
    down = stack.status(session)
    assert down.status_code == 503, down.text  # the gateway says so rather than hanging or failing
    stack.start_temporal()
    fake_llm.hold_after = None
    fake_llm.release()  # the held call answers 503 and is retried: the task goes on where it was

    state = stack.wait_for_status(session, {"completed"})
    assert state["errors"] == [] and state["results"]["documentation"] is not None
    assert fake_llm.total_served == 5  # planner + 2 code turns + 2 doc turns: nothing finished was paid twice
    assert all(count == 1 for count in fake_llm.served.values()), fake_llm.served
    after = stack.invoke()  # and a new task, through the same gateway and worker
    assert stack.wait_for_status(after, {"completed"})["errors"] == []
    assert stack.worker is not None and stack.worker.poll() is None  # neither was restarted


def follow(url: str, events: list[Event], within: float = 120) -> int:
    """What a browser's EventSource does: read the stream into `events`; when it breaks, reconnect with
    `Last-Event-ID` (the id of the last event received) until the `end` event. Returns the reconnections."""
    reconnects = 0
    last: int | None = None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            for event in sse(url, {"Last-Event-ID": str(last)} if last is not None else {}):
                events.append(event)
                last = event.id if event.id is not None else last
                if event.type == "end":
                    return reconnects
        except httpx.HTTPError:
            pass
        reconnects += 1
        time.sleep(0.2)
    raise AssertionError(f"no end event within {within}s; got {[(e.id, e.type) for e in events]}")


@pytest.mark.timeout(300)
async def test_a_client_streaming_through_a_gateway_restart_misses_nothing_and_gets_nothing_twice(
    stack: ProcessStack, fake_llm: FakeLlmServer
) -> None:
    fake_llm.hold_after = 2  # the task waits in the middle, with events already sent
    session = stack.invoke()
    url = f"{stack.url}/events/{session}?deltas=false"
    events: list[Event] = []
    reconnects: list[int] = []
    reader = threading.Thread(target=lambda: reconnects.append(follow(url, events)), daemon=True)
    reader.start()
    await wait_until(lambda: fake_llm.held >= 1 and any(e.type == "llm_call" for e in events), within=60)

    assert stack.gateway is not None
    stack.gateway.send_signal(signal.SIGKILL)  # a crash, mid-stream
    stack.gateway.wait(timeout=10)
    stack.start_gateway()
    fake_llm.hold_after = None
    fake_llm.release()
    reader.join(timeout=150)
    assert reconnects and reconnects[0] >= 1, "the client never saw the end of the stream"

    reference = list(sse(url, {}))  # the whole stream, read once the task is over
    ids = [e.id for e in events if e.id is not None]
    assert ids == [e.id for e in reference if e.id is not None]  # nothing missed, nothing twice, in order
    assert end_state(events)["task_status"] == end_state(reference)["task_status"] == "completed"
