"""The benchmark's worker process: the product worker (`OrchestratorPlugin`) plus the no-op ceiling workflow.

    python -m bench.worker_proc --noop-queue Q      # settings from the environment, like worker.py

It runs in its own process so the harness (client load, fake providers) does not share its GIL, and so its
memory can be measured on its own. It prints "ready" once both workers poll, and stops when stdin closes. With
WORKER_METRICS_PORT set it serves the SDK's Prometheus metrics there, as worker.py does (e.g. its workflow cache's
hits, misses and evictions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from temporalio.worker import Worker

from activities.config import WorkerSettings
from bench.noop import NoopWorkflow, noop_activity
from orchestrator.plugin import OrchestratorPlugin, compile_workflow_modules
from orchestrator.telemetry import TelemetrySettings, install_runtime
from orchestrator.temporal import connect_client

OPTIONS_ENV = "BENCH_WORKER_OPTIONS"  # JSON of extra Worker keyword arguments for both workers (experiments)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noop-queue", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = WorkerSettings(_env_file=None)
    if os.environ.get("WORKER_METRICS_PORT"):
        install_runtime(TelemetrySettings(_env_file=None))
    # the product's workflow-task slots (WORKER_MAX_CONCURRENT_WORKFLOW_TASKS) for both workers, so the ceiling
    # runs as the product does; BENCH_WORKER_OPTIONS overrides
    slots = {"max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks}
    options = {**slots, **json.loads(os.environ.get(OPTIONS_ENV) or "{}")}
    client = await connect_client(attempts=30)
    compile_workflow_modules(NoopWorkflow)  # as the plugin does for CodingTask
    noop = Worker(client, task_queue=args.noop_queue, workflows=[NoopWorkflow], activities=[noop_activity], **options)
    product = Worker(client, task_queue=settings.temporal_task_queue, plugins=[OrchestratorPlugin(settings)], **options)
    async with product, noop:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
