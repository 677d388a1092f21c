"""Fixtures of the fault tests: the product's services as processes a test can kill and start again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testbed.llm_server import GOOD_CODE
from tests.support import TEST_API_KEY, Services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.stop_all()


def start_memory_api(services: Services, db: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m api.memory serve` on `port` (BM25 only: no model to load), seeded with one module."""
    args = ["-m", "api.memory", "serve", "--db", str(db), "--port", str(port)]
    proc = services.start(args, {"ORCHESTRATOR_API_KEY": TEST_API_KEY, "EMBEDDING_MODEL": ""}, port)
    response = httpx.post(
        f"http://127.0.0.1:{port}/documents",
        json={"documents": [{"source": "examples/arith.py", "content": GOOD_CODE}]},
        headers={"X-API-KEY": TEST_API_KEY},
        timeout=30,
    )
    response.raise_for_status()
    return proc
