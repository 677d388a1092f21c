"""The OpenAPI documents of the gateway, the memory API and the codec server are the truth.

`schemathesis run --checks all` in every phase (examples, coverage, fuzzing, and stateful, which follows the
documents' links from a started task or an added document to the routes that take its id) against each app
served by its own command, as a process. Every response must be one the document describes (status, headers,
body; for the event streams, each event), every schema-valid request accepted, every invalid one refused.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from tests.support import TEST_API_KEY, Serve, binary, free_port, product_worker

GATEWAY_CONFIG = Path(__file__).with_name("schemathesis.toml")  # its per-route exceptions, each with its reason
EXAMPLES = 15  # per operation and phase: about a minute for the three apps together
KEY_ENV = {"ORCHESTRATOR_API_KEY": TEST_API_KEY, "LOG_LEVEL": "WARNING", "AUTH_FAILURE_LIMIT": "100000/minute"}


async def schemathesis(url: str, tmp_path: Path, config: Path | None = None) -> None:
    """`config`: per-route exceptions (schemathesis.toml), for the app they name."""
    options = ["--config-file", str(config)] if config else []
    command = [
        binary("schemathesis"), *options, "run", f"{url}/openapi.json", "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(EXAMPLES),
        "--header", f"X-API-KEY: {TEST_API_KEY}", "--request-timeout", "20", "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-12000:]
    assert "Stateful" in text and " failed" not in text.split("Test cases:")[-1], text[-3000:]
    # A warning is about coverage, not the contract; the only one tolerated is that random session ids mostly
    # miss (404): the stateful phase follows the links from real tasks for those routes.
    warnings = [line for line in text.split("Warnings:")[-1].splitlines() if "⚠️" in line] if "Warnings:" in text else []
    assert all("Missing test data" in line for line in warnings), warnings


@pytest.fixture
async def offline_worker(client: Client, task_queue: str, memory_api_url: str) -> AsyncIterator[None]:
    """A worker on its own task queue with the built-in offline model; the tasks it leaves waiting for feedback
    are terminated at the end."""
    settings = WorkerSettings(
        _env_file=None, temporal_task_queue=task_queue, llm_mode="offline",
        memory_api_url=memory_api_url, memory_api_key=TEST_API_KEY,
    )  # fmt: skip
    async with product_worker(client, settings):
        yield
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"):
        await client.get_workflow_handle(execution.id).terminate("contract test over")


@pytest.mark.timeout(480)  # about 160 s on a quiet 2-core machine: its event streams run to their 3 s limit
async def test_the_gateway_does_what_its_openapi_document_says(
    serve: Serve, temporal_env: WorkflowEnvironment, task_queue: str, offline_worker: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **KEY_ENV,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT": "100000/minute",
        "GATEWAY_STREAM_MAX_SECONDS": "3",  # a stream of a task waiting on something else ends with `timeout`
        "GATEWAY_POLL_INTERVAL": "0.1",
    }
    url = await asyncio.to_thread(serve, ["-m", "api.gateway"], env, port)
    await schemathesis(url, tmp_path, GATEWAY_CONFIG)


async def test_the_memory_api_does_what_its_openapi_document_says(serve: Serve, tmp_path: Path) -> None:
    port = free_port()
    args = ["-m", "api.memory", "serve", "--db", str(tmp_path / "memory.db"), "--port", str(port)]
    url = await asyncio.to_thread(serve, args, KEY_ENV, port)
    await schemathesis(url, tmp_path)


async def test_the_codec_server_does_what_its_openapi_document_says(serve: Serve, tmp_path: Path) -> None:
    port = free_port()
    keys = f"k1={base64.b64encode(os.urandom(32)).decode()}"
    env = {**KEY_ENV, "CODEC_SERVER_PORT": str(port), "PAYLOAD_ENCRYPTION_KEYS": keys}
    url = await asyncio.to_thread(serve, ["-m", "api.codec"], env, port)
    await schemathesis(url, tmp_path)
