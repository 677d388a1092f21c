"""Delta latency: the fake provider writes a text chunk → a stream subscriber receives it in an `llm_delta` event;
and what deltas cost in history (events and bytes per task), with and without them.

    python -m bench.delta_latency [--interval-ms 200] [--tasks 2] [--chunk-ms 20]

One worker (in this process) on a local dev server, every model the fake provider (tests/fakes), which streams
each reply in pieces of 4 characters, `--chunk-ms` apart. A subscriber reads the task's `llm_delta` topic with
`WorkflowStreamClient.subscribe` (default 100 ms poll cooldown), as the gateway does; each piece's latency is the
time from the fake writing it to the subscriber holding the event that carries it. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from orchestrator.processes import exit_now
from tests.fakes.llm_server import FakeLlmServer
from tests.support import dev_server, product_worker, start_task
from workflows.models import DELTA_TOPIC, TaskEvent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    env: WorkflowEnvironment, fake: FakeLlmServer, interval_ms: int, tasks: int, chunk_ms: int
) -> dict[str, Any]:
    queue = f"deltas-{uuid.uuid4().hex[:8]}"
    settings = WorkerSettings(
        _env_file=None,
        temporal_task_queue=queue,
        llm_mode="live",
        openai_api_key="sk-bench",
        openai_base_url=f"{fake.base_url}/v1",
        anthropic_api_key="sk-bench",
        anthropic_base_url=fake.base_url,
        memory_api_url="http://127.0.0.1:9",
        rag_request_timeout_seconds=0.2,
        llm_delta_interval_ms=interval_ms,
    )
    latencies: list[float] = []
    events = size = deltas = 0
    async with product_worker(env.client, settings):
        for _ in range(tasks):
            fake.reset()
            fake.piece_chars, fake.chunk_delay = 4, chunk_ms / 1000
            handle = await start_task(env.client, queue, feedback_window_seconds=0)
            received: list[tuple[float, str]] = []

            async def read(workflow_id: str = handle.id, into: list[tuple[float, str]] = received) -> None:
                stream = WorkflowStreamClient.create(env.client, workflow_id)
                async for item in stream.subscribe([DELTA_TOPIC], result_type=TaskEvent):
                    into.append((time.time(), item.data.data["text"]))

            reader = asyncio.create_task(read())
            await handle.result()
            await asyncio.wait_for(reader, 60)
            deltas += len(received)
            pieces = iter(fake.chunk_log)
            for at, text in received:  # each event carries the next pieces, in order
                while text:
                    written, piece = next(pieces)
                    assert text.startswith(piece), (text, piece)
                    text = text[len(piece) :]
                    latencies.append((at - written) * 1000)
            history = await handle.fetch_history()
            events += len(history.events)
            size += sum(e.ByteSize() for e in history.events)
    return {"latencies": latencies, "events": events / tasks, "bytes": size / tasks, "deltas": deltas / tasks}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--chunk-ms", type=int, default=20)
    args = parser.parse_args()
    fake = FakeLlmServer().start()
    try:
        env = await dev_server()
        async with env:
            off = await run(env, fake, 0, args.tasks, args.chunk_ms)
            on = await run(env, fake, args.interval_ms, args.tasks, args.chunk_ms)
    finally:
        fake.stop()
    ms = on["latencies"]
    pace = f"text pieces of 4 characters every {args.chunk_ms} ms"
    print(f"{args.tasks} task(s), {pace}, batch interval {args.interval_ms} ms")
    print(
        f"delta latency (chunk written -> subscriber has it), {len(ms)} pieces: p50 {statistics.median(ms):.0f} ms, "
        f"p95 {percentile(ms, 0.95):.0f} ms, max {max(ms):.0f} ms"
    )
    print(f"{'per task':20}{'without deltas':>16}{'with deltas':>14}")
    print(f"{'llm_delta events':20}{off['deltas']:>16.0f}{on['deltas']:>14.0f}")
    print(f"{'history events':20}{off['events']:>16.0f}{on['events']:>14.0f}")
    print(f"{'history bytes':20}{off['bytes']:>16.0f}{on['bytes']:>14.0f}")


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
