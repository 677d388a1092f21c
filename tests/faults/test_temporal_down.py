"""Temporal not up yet when the worker starts: the worker says what it waits for, and connects when it comes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from orchestrator.temporal import data_converter
from tests.support import SecretScan, binary, free_port, start_task, wait_until
from workflows.models import SEARCH_ATTRIBUTES, TaskStatus


async def test_a_worker_started_before_temporal_waits_for_it_and_then_works(
    spawn_worker: Callable[..., subprocess.Popen[bytes]], task_queue: str, tmp_path: Path, secret_scan: SecretScan
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    worker = spawn_worker(TEMPORAL_ADDRESS=address, LLM_MODE="offline")
    log = tmp_path / "worker-0.log"
    waiting = f"waiting for Temporal at {address} (namespace default)"
    await wait_until(lambda: waiting in log.read_text(errors="replace"), within=60)
    await wait_until(lambda: "still waiting" in log.read_text(errors="replace"), within=120)  # it is patient
    assert worker.poll() is None

    env = await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(),
        dev_server_log_level="error",
        search_attributes=SEARCH_ATTRIBUTES,
    )
    async with env:
        await wait_until(lambda: f"connected to Temporal at {address}" in log.read_text(errors="replace"), within=60)
        handle = await start_task(env.client, task_queue, feedback_window_seconds=0)
        final = await handle.result()
        assert final.task_status == TaskStatus.COMPLETED and final.results.documentation is not None
        await secret_scan.scan(env.client)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and text.count(waiting) <= 1 + text.count("still waiting"), text[-2000:]
