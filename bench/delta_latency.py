"""Delta latency: the fake provider writes a text chunk → a client receives it in an `llm_delta` event, read
directly from the workflow stream and through the gateway's SSE, side by side; and what deltas cost in history
(events and bytes per task), with and without them.

    python -m bench.delta_latency [--interval-ms 200] [--tasks 2] [--chunk-ms 20] [--via both|direct|sse] [--live]

One worker (in this process) on a local dev server, every model the fake provider (testbed), which streams
each reply in pieces of 4 characters, `--chunk-ms` apart, and a gateway (`python -m api.gateway`, its own process,
as `make run` starts it). Each task is started with `POST /invoke`, whose response is its SSE stream (the `sse`
client, deltas included); the `direct` client reads the task's `llm_delta` topic with
`WorkflowStreamClient.subscribe` (default 100 ms poll cooldown), as the gateway's one subscription per task does.
With `--live` the worker and the gateway have the live channel (NATS_URL, a nats-server of testbed/nats.py): the
deltas go from the model call to the gateway over NATS and only the `sse` client is measured (the stream has none).
Each piece's latency is the time from the fake writing it to the client holding the event that carries it.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.testing import WorkflowEnvironment

from bench.watch import API_KEY, gateway
from orchestrator.temporal import exit_now
from testbed.llm_server import FakeLlmServer
from testbed.nats import nats_server
from testbed.product import dev_server, fake_provider_settings, product_worker
from workflows.coding_task import CodingTask
from workflows.models import DELTA_TOPIC, TaskEvent

VIAS = ("direct", "sse")
Received = list[tuple[float, str]]  # (time.time() the client held the event, its text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    env: WorkflowEnvironment,
    fake: FakeLlmServer,
    interval_ms: int,
    tasks: int,
    chunk_ms: int,
    vias: tuple[str, ...],
    nats_url: str | None = None,
) -> dict[str, Any]:
    queue = f"deltas-{uuid.uuid4().hex[:8]}"
    settings = fake_provider_settings(
        fake.base_url,
        temporal_task_queue=queue,
        memory_api_url="http://127.0.0.1:9",
        rag_request_timeout_seconds=0.2,
        llm_delta_interval_ms=interval_ms,
        nats_url=nats_url,
    )
    latencies: dict[str, list[float]] = {via: [] for via in vias}
    events = size = deltas = 0
    address = env.client.service_client.config.target_host
    with gateway(address, queue, **({"NATS_URL": nats_url} if nats_url else {})) as (_, url):
        async with product_worker(env.client, settings), httpx.AsyncClient(base_url=url, timeout=120) as http:
            for _ in range(tasks):
                fake.reset()
                fake.piece_chars, fake.chunk_delay = 4, chunk_ms / 1000
                session_id = f"deltas-{uuid.uuid4().hex[:12]}"
                body = {"task_description": "write an add function", "feedback_window_seconds": 0}
                received: dict[str, Received] = {via: [] for via in vias}
                async with http.stream(
                    "POST", "/invoke", json={**body, "session_id": session_id}, headers={"X-API-KEY": API_KEY}
                ) as response:
                    response.raise_for_status()
                    direct = asyncio.create_task(read_direct(env, session_id, received.get("direct")))
                    await read_sse(response, received.get("sse"))
                    await asyncio.wait_for(direct, 60)
                handle = env.client.get_workflow_handle_for(CodingTask.run, session_id)
                await handle.result()
                deltas += len(received[vias[0]])
                for via in vias:
                    latencies[via] += match(received[via], fake.chunk_log)
                history = await handle.fetch_history()
                events += len(history.events)
                size += sum(e.ByteSize() for e in history.events)
    return {"latencies": latencies, "events": events / tasks, "bytes": size / tasks, "deltas": deltas / tasks}


async def read_direct(env: WorkflowEnvironment, session_id: str, into: Received | None) -> None:
    """The task's `llm_delta` topic through a workflow-stream subscription, until the workflow ends."""
    if into is None:
        return
    stream = WorkflowStreamClient.create(env.client, session_id)
    async for item in stream.subscribe([DELTA_TOPIC], result_type=TaskEvent):
        into.append((time.time(), item.data.data["text"]))


async def read_sse(response: httpx.Response, into: Received | None) -> None:
    """The task's SSE stream until `end`: the `llm_delta` events' texts (all read even when not measured)."""
    kind = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
            if kind == "end":
                return
        elif line.startswith("data:") and kind == "llm_delta" and into is not None:
            into.append((time.time(), TaskEvent.model_validate_json(line.partition(":")[2]).data["text"]))


def match(received: Received, written: list[tuple[float, str]]) -> list[float]:
    """Each piece's latency (ms): every event carries the next pieces the fake wrote, in order."""
    latencies = []
    pieces: Iterator[tuple[float, str]] = iter(written)
    for at, text in received:
        while text:
            wrote, piece = next(pieces)
            assert text.startswith(piece), (text, piece)
            text = text[len(piece) :]
            latencies.append((at - wrote) * 1000)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--chunk-ms", type=int, default=20)
    parser.add_argument("--via", choices=("both", *VIAS), default="both", help="which clients are measured")
    parser.add_argument("--live", action="store_true", help="over the live channel (NATS_URL); measures sse only")
    args = parser.parse_args()
    vias = ("sse",) if args.live else VIAS if args.via == "both" else (args.via,)
    fake = FakeLlmServer().start()
    try:
        with contextlib.ExitStack() as stack:
            nats_url = stack.enter_context(nats_server()).url if args.live else None
            env = await dev_server()
            async with env:
                off = await run(env, fake, 0, args.tasks, args.chunk_ms, vias, nats_url)
                on = await run(env, fake, args.interval_ms, args.tasks, args.chunk_ms, vias, nats_url)
    finally:
        fake.stop()
    pace = f"text pieces of 4 characters every {args.chunk_ms} ms"
    print(f"{args.tasks} task(s), {pace}, batch interval {args.interval_ms} ms")
    labels = {"direct": "workflow-stream subscriber", "sse": "gateway SSE client" + (" (live channel)" * args.live)}
    for via in vias:
        ms = on["latencies"][via]
        print(
            f"delta latency (chunk written -> {labels[via]} has it), {len(ms)} pieces: "
            f"p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 0.95):.0f} ms, max {max(ms):.0f} ms"
        )
    print(f"{'per task':20}{'without deltas':>16}{'with deltas':>14}   (workflow-stream subscriptions: {len(vias)})")
    print(f"{'llm_delta events':20}{off['deltas']:>16.0f}{on['deltas']:>14.0f}")
    print(f"{'history events':20}{off['events']:>16.0f}{on['events']:>14.0f}")
    print(f"{'history bytes':20}{off['bytes']:>16.0f}{on['bytes']:>14.0f}")


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
