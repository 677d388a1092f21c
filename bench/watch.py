"""The `watch` phase of the harness: what watching a task over SSE costs the stack (`--phases watch`).

Runs a gateway (`python -m api.gateway`, its own process) beside the harness' server, worker and fake providers,
with the fake providers taking `latency` seconds a model call (3 s: closer to real calls than 0), the reply streamed
over its last 90 % (as real calls write, so a watcher gets the calls' text as `llm_delta` events), twice, side by
side: `poll`, the gateway long-polling the workflow stream (no NATS_URL), then `live`, a
nats-server (testbed/nats.py, its CPU counted) with a worker and a gateway that have NATS_URL (the live channel,
orchestrator/live.py). For each:

- N tasks started through the gateway (`POST /invoke?stream=false`) and left unwatched, N more each watched by one
  SSE client from start to end (`GET /events` right after the start: a describe for the owner and a catch-up
  query), and N more each started by a client with a stream (`POST /invoke`, SSE: nothing to catch up on); N/4 at a
  time, in the order unwatched, watched, started, started, watched, unwatched, twice: stack CPU per task (server +
  worker + lint pool + providers + gateway, and nats-server; the SSE clients are the harness', not counted) and
  the ratios to unwatched;
- one task watched by 1, 10 and 50 SSE clients at once: stack CPU of the task (the goal: about flat);
- the history of a watched and an unwatched task: events and bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, Protocol

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client

from bench.service import service
from launcher.processes import cpu_seconds
from testbed.nats import nats_server
from testbed.server import free_port
from workflows.coding_task import CodingTask


class _Processes(Protocol):
    def cpu(self) -> dict[str, float]: ...


class Bench(Protocol):
    """What this phase uses of the harness's bench (`bench.harness.Bench`)."""

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def procs(self) -> _Processes: ...

    async def set_latency(self, latency: float, stream_seconds: float = 0.0) -> None: ...

    def extra_worker(self, task_queue: str, **env: str) -> contextlib.AbstractContextManager[None]: ...

    def task_ok(self, state: Any) -> bool: ...


API_KEY = "bench-gateway-key-0123456789abcdef"
FANOUT = (1, 10, 50)
# The watch set's kinds of batch: (SSE clients per task, the client starts the task with a stream), and their order
WATCHING = {"unwatched": (0, False), "watched": (1, False), "started_watched": (1, True)}
ORDER = ("unwatched", "watched", "started_watched", "started_watched", "watched", "unwatched") * 2


@contextlib.contextmanager
def gateway(address: str, task_queue: str, **extra: str) -> Iterator[tuple[int, str]]:
    """The gateway as `make run` starts it, on a free port, with `extra` in its environment: (pid, base URL)."""
    port = free_port()
    env = {
        **extra,
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ORCHESTRATOR_", "GATEWAY_"))},
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": task_queue,
        "ORCHESTRATOR_API_KEY": API_KEY,
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT": "100000/minute",
        "LOG_LEVEL": "WARNING",
    }
    # BENCH_GATEWAY_ROOT: run another checkout's gateway (e.g. one that polls) against this stack, to compare
    root = os.environ.get("BENCH_GATEWAY_ROOT")
    if root:
        env["PYTHONPATH"] = root
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "api.gateway"]
    with service(command, env, f"{url}/health", "the gateway", cwd=root, timeout=60) as proc:
        yield proc.pid, url


async def _watch(
    http: httpx.AsyncClient, session_id: str, body: dict[str, Any] | None = None, started: asyncio.Event | None = None
) -> int:
    """One SSE client from the first event to `end`: of a started task (GET /events), or with `body`, the client
    that starts it (POST /invoke, `started` set once it has); the number of events it got."""
    path, content = ("/invoke", {**body, "session_id": session_id}) if body else (f"/events/{session_id}", None)
    count = 0
    try:
        async with http.stream(
            "POST" if body else "GET", path, json=content, headers={"X-API-KEY": API_KEY}
        ) as response:
            response.raise_for_status()
            if started is not None:
                started.set()
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    count += 1
                    if line.strip() == "event: end":
                        break
    finally:
        if started is not None:
            started.set()
    return count


async def _history(bench: Bench, session_id: str) -> tuple[int, int, Counter[str]]:
    """The task's history: events, bytes, and events by type (a signal by its name, an update by its handler)."""
    history = await bench.client.get_workflow_handle(session_id).fetch_history()
    kinds: Counter[str] = Counter()
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        if event.HasField("workflow_execution_signaled_event_attributes"):
            kind += " " + event.workflow_execution_signaled_event_attributes.signal_name
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            kind += " " + event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        kinds[kind] += 1
    return len(history.events), History(events=history.events).ByteSize(), kinds


async def _batch(
    bench: Bench, http: httpx.AsyncClient, pids: dict[str, int], n: int, watchers: int, tag: str, stream: bool = False
) -> dict[str, Any]:
    """N tasks started through the gateway, each watched by `watchers` SSE clients (`stream`: one, the client that
    started it with a stream): stack CPU per task (`pids`: the gateway's and the other processes counted with the
    stack)."""

    def cpu_now() -> dict[str, float]:
        return {**bench.procs.cpu(), **{name: cpu_seconds(pid) for name, pid in pids.items()}}

    before = cpu_now()
    ids = [f"bench-{bench.run_id}-{tag}-{i}-{uuid.uuid4().hex[:4]}" for i in range(n)]
    body = {"task_description": "Write a function add(first, second) with docs.", "feedback_window_seconds": 0}
    began = time.perf_counter()
    if stream:
        ready = [asyncio.Event() for _ in ids]
        clients = [asyncio.create_task(_watch(http, s, body, r)) for s, r in zip(ids, ready, strict=True)]
        await asyncio.gather(*(r.wait() for r in ready))
    else:
        for session_id in ids:
            started = await http.post(
                "/invoke?stream=false", json={**body, "session_id": session_id}, headers={"X-API-KEY": API_KEY}
            )
            started.raise_for_status()
        clients = [asyncio.create_task(_watch(http, s)) for s in ids for _ in range(watchers)]
    states = await asyncio.gather(*(bench.client.get_workflow_handle_for(CodingTask.run, s).result() for s in ids))
    events = await asyncio.gather(*clients)
    wall = time.perf_counter() - began
    after = cpu_now()
    cpu = {k: (after[k] - before[k]) / n for k in after if k != "harness"}
    history = await asyncio.gather(*(_history(bench, s) for s in ids))
    return {
        "n": n,
        "watchers_per_task": watchers,
        "failed": sum(1 for s in states if not bench.task_ok(s)),
        "wall_s": wall,
        "cpu_s_per_task": cpu,
        "stack_cpu_s_per_task": sum(cpu.values()),
        "sse_events_per_client": (sum(events) / len(events)) if events else 0,
        "history_events_per_task": sum(h[0] for h in history) / n,
        "history_bytes_per_task": sum(h[1] for h in history) / n,
        "history_events_by_type_per_task": {k: v / n for k, v in sum((h[2] for h in history), Counter()).items()},
    }


def _merged(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches of one kind and size as one: per-task figures averaged, counts summed."""
    k = len(batches)
    first = batches[0]
    mean = {key: sum(b[key] for b in batches) / k for key, v in first.items() if isinstance(v, float)}
    cpu = {key: sum(b["cpu_s_per_task"][key] for b in batches) / k for key in first["cpu_s_per_task"]}
    kinds = {key for b in batches for key in b["history_events_by_type_per_task"]}
    return {
        **mean,
        "n": sum(b["n"] for b in batches),
        "watchers_per_task": first["watchers_per_task"],
        "failed": sum(b["failed"] for b in batches),
        "cpu_s_per_task": cpu,
        "stack_cpu_s_per_task_each": [b["stack_cpu_s_per_task"] for b in batches],
        "history_events_by_type_per_task": {
            key: sum(b["history_events_by_type_per_task"].get(key, 0) for b in batches) / k for key in kinds
        },
    }


async def _watch_set(bench: Bench, url: str, pids: dict[str, int], n: int, tag: str) -> dict[str, Any]:
    """N unwatched, N watched and N started-watched tasks, in quarters in ORDER (the machine's speed drifts between
    batches), then one task watched by 1, 10 and 50 clients."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    quarter = max(1, n // 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        await _batch(bench, http, pids, 2, 1, f"{tag}-warmup")  # the gateway's imports, connections
        batches: dict[str, list[dict[str, Any]]] = {kind: [] for kind in WATCHING}
        for k, kind in enumerate(ORDER):
            watchers, stream = WATCHING[kind]
            batches[kind].append(await _batch(bench, http, pids, quarter, watchers, f"{tag}-{k}-{kind}", stream))
        unwatched, watched, started = (_merged(batches[kind]) for kind in WATCHING)
        fanout = {k: await _batch(bench, http, pids, 1, k, f"{tag}-fan{k}") for k in FANOUT}
    return {
        "unwatched": unwatched,
        "watched": watched,
        "watched_over_unwatched": watched["stack_cpu_s_per_task"] / unwatched["stack_cpu_s_per_task"],
        "started_watched": started,
        "started_watched_over_unwatched": started["stack_cpu_s_per_task"] / unwatched["stack_cpu_s_per_task"],
        "fanout": {str(k): v for k, v in fanout.items()},
    }


async def watch_phase(bench: Bench, address: str, n: int, latency: float) -> dict[str, Any]:
    await bench.set_latency(0.1 * latency, 0.9 * latency)  # text from 10 % of the call on, as real calls write
    with gateway(address, bench.task_queue) as (pid, url):
        poll = await _watch_set(bench, url, {"gateway": pid}, n, "poll")
    queue = f"{bench.task_queue}-live"
    with (
        nats_server() as nats,
        bench.extra_worker(queue, NATS_URL=nats.url),
        gateway(address, queue, NATS_URL=nats.url) as (pid, url),
    ):
        live = await _watch_set(bench, url, {"gateway": pid, "nats": nats.pid}, n, "live")
    return {
        "latency_s": latency,
        "poll": poll,
        "live": live,
        "live_unwatched_over_poll_unwatched": live["unwatched"]["stack_cpu_s_per_task"]
        / poll["unwatched"]["stack_cpu_s_per_task"],
    }


def rows(w: dict[str, Any]) -> list[tuple[str, str, str]]:
    def cpu(row: dict[str, Any]) -> str:
        return ", ".join(f"{k} {1000 * v:.0f}" for k, v in row["cpu_s_per_task"].items() if v >= 0.0005)

    out = []
    for mode, label in (("poll", "stream long-poll"), ("live", "live channel (NATS)")):
        m = w[mode]
        un, wa = m["unwatched"], m["watched"]
        out += [
            (
                f"{mode}: unwatched CPU/task (L={w['latency_s']:g})",
                f"{1000 * un['stack_cpu_s_per_task']:.0f} ms",
                f"{label}; N={un['n']}, failed {un['failed']}: {cpu(un)}",
            ),
            (
                f"{mode}: watched CPU/task (1 SSE each)",
                f"{1000 * wa['stack_cpu_s_per_task']:.0f} ms",
                f"N={wa['n']}, failed {wa['failed']}, {wa['sse_events_per_client']:.0f} SSE events each: {cpu(wa)}",
            ),
            (f"{mode}: watched / unwatched", f"{m['watched_over_unwatched']:.2f}", "goal <= 1.10"),
        ]
        if st := m.get("started_watched"):
            out += [
                (
                    f"{mode}: started with a stream CPU/task",
                    f"{1000 * st['stack_cpu_s_per_task']:.0f} ms",
                    f"N={st['n']}, failed {st['failed']}, POST /invoke streaming: {cpu(st)}",
                ),
                (f"{mode}: started with a stream / unwatched", f"{m['started_watched_over_unwatched']:.2f}", ""),
            ]
        for k, row in m["fanout"].items():
            out.append((f"{mode}: 1 task, {k} watchers", f"{1000 * row['stack_cpu_s_per_task']:.0f} ms", cpu(row)))
        for name, row in (("unwatched", un), ("watched", wa)):
            out.append(
                (
                    f"{mode}: history/task {name}",
                    f"{row['history_events_per_task']:.0f} events",
                    f"{row['history_bytes_per_task'] / 1024:.1f} KB",
                )
            )
    out.append(
        (
            "live unwatched / poll unwatched",
            f"{w['live_unwatched_over_poll_unwatched']:.2f}",
            "what the live channel costs a task nobody watches (nats-server counted)",
        )
    )
    return out
