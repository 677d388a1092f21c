"""The ceiling workload: a workflow with the same activity graph as one CodingTask, whose activities do nothing.

A CodingTask against the fake providers runs 9 activities: planner LLM; code agent LLM → (RAG ‖ lint) → LLM →
final lint; doc agent LLM → RAG → LLM. This workflow schedules the same 9 in the same order and concurrency,
with the same kind of typed inputs and outputs, so its throughput is the limit of our design on this server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

NOOP_WORKFLOW = "BenchNoop"
NOOP_ACTIVITY = "bench_noop"
NOOP_ACTIVITIES_PER_WORKFLOW = 9
START_TO_CLOSE = timedelta(seconds=60)


@activity.defn(name=NOOP_ACTIVITY)
async def noop_activity(step: str) -> str:
    return step


@workflow.defn(name=NOOP_WORKFLOW)
class NoopWorkflow:
    @workflow.run
    async def run(self, label: str) -> int:
        async def call(step: str) -> str:
            result: str = await workflow.execute_activity(
                NOOP_ACTIVITY, f"{label}:{step}", start_to_close_timeout=START_TO_CLOSE
            )
            return result

        await call("plan")
        await call("code-llm-1")
        await asyncio.gather(call("code-rag"), call("code-lint"))
        await call("code-llm-2")
        await call("code-final-lint")
        await call("doc-llm-1")
        await call("doc-rag")
        await call("doc-llm-2")
        return NOOP_ACTIVITIES_PER_WORKFLOW
