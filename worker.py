"""The worker: runs the `CodingTask` workflow and its activities on the `coding-tasks` task queue.

    python worker.py            # connects with temporalio.envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ...)

SIGINT / SIGTERM stop polling and let running activities finish (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.config import WorkerSettings
from activities.lint import LintActivities
from activities.llm import LlmActivities
from activities.rag import RagActivities
from activities.search_attributes import search_attributes_registered
from orchestrator.telemetry import TelemetrySettings, configure_logging, install_runtime, worker_interceptors
from orchestrator.temporal import connect_client
from workflows.coding_task import CodingTask

logger = logging.getLogger("worker")

CONNECT_ATTEMPTS = 30
GRACEFUL_SHUTDOWN = timedelta(seconds=15)


def compile_workflow_modules(*workflows: type) -> None:
    """Write current bytecode for the workflows' modules, which the sandbox re-imports for every workflow run.

    Without a current `.pyc` (PYTHONDONTWRITEBYTECODE=1, common in containers, or a source edited since) every
    run compiles the module from source again: about 9 ms of CPU per task for `workflows/coding_task.py`.
    A read-only tree keeps working, only slower.
    """
    for workflow in workflows:
        path = getattr(sys.modules[workflow.__module__], "__file__", None)
        if path and not compileall.compile_file(path, quiet=2):
            logger.warning("cannot write bytecode for %s: each workflow run compiles it", path)


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: WorkerSettings, task_queue: str | None = None, **worker_options: Any
) -> AsyncIterator[Worker]:
    """A started worker with every activity registered; stops gracefully when the block ends.

    The warm pylint pool starts in the background while the worker already polls, and is stopped last.
    `worker_options` override the Worker's keyword arguments (benchmarks, experiments).
    """
    compile_workflow_modules(CodingTask)
    llm, lint, rag = LlmActivities(settings), LintActivities(settings), RagActivities(settings)
    options: dict[str, Any] = {
        "workflows": [CodingTask],
        "activities": [llm.chat, lint.lint, rag.search_knowledge, search_attributes_registered],
        "interceptors": worker_interceptors(),
        "graceful_shutdown_timeout": GRACEFUL_SHUTDOWN,
        **worker_options,
    }
    worker = Worker(client, task_queue=task_queue or settings.temporal_task_queue, **options)
    warm_up = asyncio.create_task(lint.start())  # polling starts at once; the first lint waits for the pool
    try:
        async with worker:
            yield worker
    finally:
        await asyncio.gather(warm_up, return_exceptions=True)
        await llm.aclose()
        await rag.aclose()
        await lint.aclose()


def check_llm_mode(settings: WorkerSettings) -> None:
    """LLM_MODE=live refuses to start without the keys its models need; auto warns and uses offline."""
    missing = settings.missing_keys()
    if settings.llm_mode == "offline":
        logger.info("LLM_MODE=offline: every role uses the built-in offline model")
    elif missing and settings.llm_mode == "live":
        raise SystemExit(f"LLM_MODE=live but {', '.join(missing)} not set; refusing to start")
    elif missing:
        logger.warning(
            "%s not set: the roles that need them use the built-in offline model (LLM_MODE=auto)",
            ", ".join(missing),
        )


async def main() -> None:
    settings = WorkerSettings()
    telemetry = TelemetrySettings()
    configure_logging(telemetry)  # LOG_FORMAT=json: one JSON object per line, with workflow id and activity type
    install_runtime(telemetry)  # Prometheus metrics on WORKER_METRICS_PORT (default 9464), before any client
    check_llm_mode(settings)
    client = await connect_client(attempts=CONNECT_ATTEMPTS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(client, settings):
        logger.info(
            "worker polling task queue %r on %s (models: planner=%s code=%s doc=%s, LLM_MODE=%s)",
            settings.temporal_task_queue,
            client.service_client.config.target_host,
            settings.planner_model,
            settings.code_model,
            settings.doc_model,
            settings.llm_mode,
        )
        await stop.wait()
        logger.info("shutting down: waiting up to %ss for running activities", GRACEFUL_SHUTDOWN.total_seconds())
    logger.info("worker stopped")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
