"""Fixtures of the fault tests: the product's services as processes a test can kill and start again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.llm_server import GOOD_CODE
from tests.support import MEMORY_SERVICE_KEY, TEST_API_KEY, Services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.stop_all()


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
