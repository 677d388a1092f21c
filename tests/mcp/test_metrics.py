"""The worker's Prometheus endpoint counts MCP calls per server, tool and outcome, and their latency."""

from __future__ import annotations

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.telemetry import metrics_runtime
from testbed.llm_server import FakeLlmServer
from tests.mcp.test_agent_tools import tool_results
from tests.support import free_port, start_task
from workflows.models import TaskStatus


async def test_mcp_calls_are_counted_per_server_tool_and_outcome(
    temporal_env: WorkflowEnvironment, mcp_settings: WorkerSettings, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    port = free_port()
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(f"127.0.0.1:{port}"),
    )
    description = (
        '[tool time__get_current_time {"timezone": "UTC"}] [tool time__convert_time {"source_timezone": "Mars/Olympus",'
        ' "time": "10:00", "target_timezone": "UTC"}]'
    )
    async with Worker(client, task_queue=task_queue, plugins=[OrchestratorPlugin(mcp_settings)]):
        handle = await start_task(client, task_queue, task_description=description, feedback_window_seconds=0,
                                  mcp_tools=["time"])  # fmt: skip
        final = await handle.result()
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert final.task_status == TaskStatus.COMPLETED
    assert "Mars/Olympus" in tool_results(fake_llm)["time__convert_time"]  # the tool's own error, read by the model
    assert final.tool_usage["time.convert_time"].errors == 1

    def samples(name: str, *labels: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(name) and task_queue in line
                and all(label in line for label in labels)]  # fmt: skip

    assert samples("orchestrator_mcp_calls", 'server="time"', 'tool="get_current_time"', 'outcome="ok"')
    assert samples("orchestrator_mcp_calls", 'server="time"', 'tool="convert_time"', 'outcome="tool_error"')
    assert samples("orchestrator_mcp_latency_bucket", 'server="time"', 'tool="get_current_time"', 'le="0.005"')
