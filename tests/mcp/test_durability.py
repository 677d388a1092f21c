"""A worker killed while an MCP call is in flight: a new worker retries that call alone (on a new server process)
and pays no finished model call twice; the dead worker's stdio server ends with it (its stdin closes)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

from testbed.llm_server import FakeLlmServer
from tests.mcp.test_agent_tools import tool_results, wait_for_event
from tests.mcp.test_pool import alive
from tests.support import ROOT, start_task, wait_until
from workflows.models import EventType, TaskStatus


@pytest.mark.timeout(300)  # two worker processes' start and the call's 15 s heartbeat timeout, on a busy machine
async def test_a_worker_killed_mid_call_repays_no_model_call(
    client: Client, fake_llm: FakeLlmServer, task_queue: str, spawn_worker, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    probe = {"command": sys.executable, "args": ["-m", "tests.mcp.probe_server", "stdio"], "cwd": str(ROOT)}
    config.write_text(json.dumps({"mcpServers": {"probe": probe}}))
    first = spawn_worker(MCP_SERVERS_FILE=str(config))
    description = '[tool probe__pid {}] [tool probe__slow {"seconds": 4}]'
    handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=0,
                              mcp_tools=["probe"])  # fmt: skip
    pid_call = await wait_for_event(handle, lambda e: e.type == EventType.TOOL_CALL and e.data["tool"] == "probe.pid")
    first_server = int(pid_call.data["result"])
    assert fake_llm.total_served == 2  # the planner and the code agent's first turn

    first.send_signal(signal.SIGKILL)  # while probe.slow runs
    first.wait(timeout=10)
    await wait_until(lambda: not alive(first_server), within=10)  # its server saw stdin close and ended
    spawn_worker(MCP_SERVERS_FILE=str(config))
    final = await handle.result()

    assert final.task_status == TaskStatus.COMPLETED
    slept = tool_results(fake_llm)["probe__slow"]
    assert slept.startswith("slept 4") and int(slept.rsplit(" ", 1)[1]) != first_server
    assert fake_llm.total_served == 5 and all(n == 1 for n in fake_llm.served.values()), fake_llm.served
