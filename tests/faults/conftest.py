"""Fixtures of the fault tests: the product's services as processes a test can kill and start again."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from orchestrator.temporal import data_converter
from testbed.llm_server import GOOD_CODE
from tests.faults.stack import ProcessStack
from tests.support import MEMORY_SERVICE_KEY, TEST_API_KEY, SecretScan, Services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """How a module's `stack` differs from the default one (a module overrides this fixture)."""
    return {}


@pytest.fixture
async def stack(
    services: Services,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    task_queue: str,
    secret_scan: SecretScan,
    stack_options: dict[str, Any],
) -> AsyncIterator[ProcessStack]:
    """Temporal dev server (on a database file), worker and gateway as processes; the histories scanned for
    secrets at the end while the server is still up."""
    running = ProcessStack(services, spawn_worker, tmp_path / "temporal.db", task_queue, **stack_options).start()
    yield running
    if running.temporal is not None and running.temporal.poll() is None:
        await secret_scan.scan(await Client.connect(running.address, data_converter=data_converter()))


def start_memory_api(services: Services, db: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m api.memory serve` on `port` (BM25 only: no model to load), its shared base seeded with one module."""
    args = ["-m", "api.memory", "serve", "--db", str(db), "--port", str(port)]
    env = {"ORCHESTRATOR_API_KEY": TEST_API_KEY, "MEMORY_API_KEY": MEMORY_SERVICE_KEY, "EMBEDDING_MODEL": ""}
    proc = services.start(args, env, port)
    response = httpx.post(
        f"http://127.0.0.1:{port}/documents",
        json={"documents": [{"source": "examples/arith.py", "content": GOOD_CODE}]},
        headers={"X-API-KEY": MEMORY_SERVICE_KEY},
        timeout=30,
    )
    response.raise_for_status()
    return proc
