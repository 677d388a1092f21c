"""What Anthropic prompt caching saves: tokens billed and dollars per task, with and without, side by side.

    python -m bench.prompt_cache [--context-kb 24] [--tasks 3]

Every role runs on `anthropic:claude-sonnet-4-6` against the fake provider (testbed), which caches a marked
prefix as Anthropic does: written at its cache-write price the first time, read at the cache-read price after.
The code agent's conversation starts with the task, the plan and a code context of `--context-kb` KB, and each
agent re-sends it on every step of its loop: the saving grows with the context and the steps. Prices are the
worker's table (activities/prices.py). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from temporalio.testing import WorkflowEnvironment

from orchestrator.temporal import exit_now
from testbed.llm_server import FakeLlmServer
from testbed.product import dev_server, fake_provider_settings, product_worker, start_task

MODEL = "anthropic:claude-sonnet-4-6"


def context(kilobytes: int) -> str:
    lines, size, n = [], 0, 0
    while size < kilobytes * 1024:
        line = f"def helper_{n}(value: int) -> int:\n    return value + {n}\n\n"
        lines.append(line)
        size, n = size + len(line), n + 1
    return "".join(lines)


async def measure(
    env: WorkflowEnvironment, fake: FakeLlmServer, caching: bool, code_context: str, tasks: int
) -> dict[str, Any]:
    queue = f"cache-{uuid.uuid4().hex[:8]}"
    settings = fake_provider_settings(
        fake.base_url,
        temporal_task_queue=queue,
        planner_model=MODEL,
        code_model=MODEL,
        doc_model=MODEL,
        memory_api_url="http://127.0.0.1:9",
        rag_request_timeout_seconds=0.2,
        anthropic_prompt_caching=caching,
    )
    fake.reset()
    dollars = 0.0
    async with product_worker(env.client, settings):
        for _ in range(tasks):
            handle = await start_task(env.client, queue, feedback_window_seconds=0, code_context=code_context)
            state = await handle.result()
            dollars += state.cost_usd or 0.0
    usage = [r["usage"] for r in fake.requests if r["status"] == 200]
    return {
        "calls": len(usage) / tasks,
        "fresh_input": sum(u["input_tokens"] for u in usage) / tasks,
        "cache_write": sum(u["cache_creation_input_tokens"] for u in usage) / tasks,
        "cache_read": sum(u["cache_read_input_tokens"] for u in usage) / tasks,
        "output": sum(u["output_tokens"] for u in usage) / tasks,
        "usd": dollars / tasks,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context-kb", type=int, default=24)
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    code_context = context(args.context_kb)
    fake = FakeLlmServer().start()
    try:
        env = await dev_server()
        async with env:
            without = await measure(env, fake, False, code_context, args.tasks)
            with_caching = await measure(env, fake, True, code_context, args.tasks)
    finally:
        fake.stop()
    print(f"per task, every role on {MODEL}, code context {args.context_kb} KB, {args.tasks} task(s) each")
    print(f"{'':16}{'without caching':>18}{'with caching':>16}{'ratio':>8}")
    for key, label in (
        ("calls", "model calls"),
        ("fresh_input", "input tokens"),
        ("cache_write", "cache writes"),
        ("cache_read", "cache reads"),
        ("output", "output tokens"),
        ("usd", "USD"),
    ):
        a, b = without[key], with_caching[key]
        ratio = f"{b / a:.2f}" if a else "-"
        fmt = "{:>18.6f}{:>16.6f}" if key == "usd" else "{:>18.0f}{:>16.0f}"
        print(f"{label:16}" + fmt.format(a, b) + f"{ratio:>8}")


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
