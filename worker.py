"""The worker: runs the `CodingTask` workflow and its activities on the `coding-tasks` task queue.

    python worker.py            # connects with temporalio.envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ...)

All wiring (converter, workflow, activities, interceptors, resources) is `orchestrator.plugin.OrchestratorPlugin`.
SIGINT / SIGTERM stop polling and let running activities finish (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import timedelta

from pydantic import ValidationError
from temporalio.worker import Worker

from activities.config import WorkerSettings
from activities.llm import missing_keys
from activities.prices import PriceFileError
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.telemetry import TelemetrySettings, configure_logging, install_runtime
from orchestrator.temporal import connect_client

logger = logging.getLogger("worker")

CONNECT_ATTEMPTS = None  # wait for Temporal as long as it takes (saying so), like a service that depends on it
GRACEFUL_SHUTDOWN = timedelta(seconds=15)


def check_llm_mode(settings: WorkerSettings) -> None:
    """LLM_MODE=live refuses to start without the keys its models need; auto warns and uses offline."""
    missing = missing_keys(settings)
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
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
    telemetry = TelemetrySettings()
    configure_logging(telemetry)  # LOG_FORMAT=json: one JSON object per line, with workflow id and activity type
    install_runtime(telemetry)  # Prometheus metrics on WORKER_METRICS_PORT (default 9464), before any client
    check_llm_mode(settings)
    try:
        plugin = OrchestratorPlugin(settings)
    except PriceFileError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
    client = await connect_client(attempts=CONNECT_ATTEMPTS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        plugins=[plugin],
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    async with worker:
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
