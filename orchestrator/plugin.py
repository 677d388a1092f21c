"""All of a worker's wiring in one `SimplePlugin`: the data converter, the workflow, the activities, the
interceptors and the lifetime of the activities' resources (the warm pylint pool, the provider clients).

    Worker(client, task_queue=..., plugins=[OrchestratorPlugin(settings)])    # worker.py, tests, the benchmark
    Replayer(workflows=[], plugins=[OrchestratorPlugin()])                   # replay tests

Everything that runs the workflow goes through it, so no set-up can drift to another converter or forget an
activity. Clients that only start and query tasks (the gateway, scripts) connect with
`orchestrator.temporal.connect_client`, which uses the same `data_converter()`.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio.client import Client
from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkerConfig

from activities.config import WorkerSettings
from activities.lint import LintActivities
from activities.llm import LlmActivities
from activities.mcp_tools import McpActivities
from activities.rag import RagActivities
from activities.sandbox import SandboxActivities
from orchestrator.live import LivePublisher, registered
from orchestrator.telemetry import worker_interceptors
from orchestrator.temporal import data_converter
from workflows.coding_task import CodingTask

logger = logging.getLogger(__name__)

PLUGIN_NAME = "coding-orchestrator"


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


class WorkerActivities:
    """The activities of one worker, with the resources they hold (pylint pool, HTTP clients, MCP connections).

    Raises McpConfigError when MCP_SERVERS_FILE is unusable (the worker refuses to start)."""

    def __init__(self, settings: WorkerSettings) -> None:
        compile_workflow_modules(CodingTask)
        self.live = LivePublisher(settings.nats_url) if settings.nats_url else None
        self.client: Client | None = None  # and the task queue: the worker's, once it is configured
        self.task_queue = ""
        self.llm, self.lint, self.rag = (
            LlmActivities(settings, self.live),
            LintActivities(settings),
            RagActivities(settings),
        )
        self.sandbox = SandboxActivities(settings)
        self.mcp = McpActivities(settings)
        self.functions: list[Callable[..., Any]] = [
            self.llm.chat,
            self.lint.lint,
            self.rag.search_knowledge,
            self.sandbox.run_tests,
            self.mcp.list_tools,
            self.mcp.call_tool,
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The warm pylint pool starts, and the sandbox is probed, while the worker already polls (the first lint
        waits for the pool); on the way out the provider clients and the pool are closed."""
        warm_up = asyncio.create_task(self.lint.start())
        probe = asyncio.create_task(self.sandbox.start())
        try:
            async with self._live_channel():
                yield
        finally:
            probe.cancel()
            await asyncio.gather(warm_up, probe, return_exceptions=True)
            await self.llm.aclose()
            await self.rag.aclose()
            await self.lint.aclose()
            await self.mcp.aclose()  # every MCP server process the pool started ends here

    @contextlib.asynccontextmanager
    async def _live_channel(self) -> AsyncIterator[None]:
        """The live publisher, where this worker's workflows find it (by namespace and task queue)."""
        if self.live is None or self.client is None:
            yield
            return
        await self.live.start(self.client.data_converter)
        try:
            with registered(self.client.namespace, self.task_queue, self.live):
                yield
        finally:
            await self.live.aclose()


class OrchestratorPlugin(SimplePlugin):
    """With `settings`: a worker's plugin (activities and their resources). Without: the workflow only (replay)."""

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        self.worker_activities = WorkerActivities(settings) if settings is not None else None
        super().__init__(
            PLUGIN_NAME,
            data_converter=data_converter(),
            workflows=[CodingTask],
            activities=self.worker_activities.functions if self.worker_activities else None,
            interceptors=worker_interceptors(),
            run_context=self.worker_activities.running if self.worker_activities else None,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Also tells the activities' resources which client and task queue they serve (the live channel)."""
        if self.worker_activities is not None:
            self.worker_activities.client = config["client"]
            self.worker_activities.task_queue = config["task_queue"]
        return super().configure_worker(config)
