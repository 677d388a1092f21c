"""Run only by tests/test_stopping_the_suite.py, in a pytest of its own (the name keeps it out of collection):
it starts what a real test starts (the session's Temporal dev server and a spawned worker), says so, and waits
to be stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from temporalio.testing import WorkflowEnvironment


async def test_waits_with_a_dev_server_and_a_worker(
    temporal_env: WorkflowEnvironment, spawn_worker: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn_worker()
    await asyncio.to_thread(Path(os.environ["SIGTERM_PROBE_READY"]).write_text, str(worker.pid))
    await asyncio.sleep(600)
