"""An MCP tool offered to a real small model: SmolLM2-135M on llama-server, mcp-server-time over stdio.

What is honest to assert of a 135M model: the tool was listed once and offered to it (each agent's request with
tools carried it, and llama-server's prompt held it: more prompt tokens than the same request without it), the
task completes, and whatever the model did
with the tool is recorded (each call it made is an `mcp_call_tool` activity, a `tool_call` event with its result,
and counted in `tool_usage`). Whether it calls the tool at all is the model's choice: printed, not asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client

from testbed.llama_server import LlamaServer
from tests.interop.support import SpawnWorker, worker_environment
from tests.interop.test_llama_server import TASK_TIMEOUT, chat, run_task
from tests.mcp.conftest import pypi_server
from tests.mcp.test_agent_tools import activities_of
from workflows.coding_task import CodingTask
from workflows.models import (
    MCP_CALL_TOOL_ACTIVITY,
    MCP_LIST_TOOLS_ACTIVITY,
    EventsQueryInput,
    EventType,
    TaskStatus,
)

pytestmark = pytest.mark.interop

TOOL, MODEL_NAME = "time.get_current_time", "time__get_current_time"
DESCRIPTION = (
    "Call the tool time__get_current_time with timezone UTC to learn the current time, then write a Python "
    "function `now_label()` that returns the string 'generated at ' followed by that time."
)


@pytest.mark.timeout(TASK_TIMEOUT)
async def test_a_real_model_is_offered_an_mcp_tool(
    client: Client,
    task_queue: str,
    llama: LlamaServer,
    memory_api_url: str,
    spawn_worker: SpawnWorker,
    tmp_path: Path,
) -> None:
    config = tmp_path / "mcp.json"
    time_server = pypi_server("mcp_server_time", "--local-timezone", "UTC") | {"approval": "allow"}
    config.write_text(json.dumps({"mcpServers": {"time": time_server}}))
    spawn_worker(worker_environment(client, task_queue, llama, memory_api_url) | {"MCP_SERVERS_FILE": str(config)})
    state, exchanges, handle = await run_task(client, task_queue, DESCRIPTION, mcp_tools=[TOOL])

    ran = [name for name, _ in await activities_of(handle)]
    assert ran.count(MCP_LIST_TOOLS_ACTIVITY) == 1  # listed once for the task, offered to both agents
    with_tools = [e for e in exchanges if e.request.tools]
    assert {e.request.role for e in with_tools} == {"code_generation", "documentation"}
    for exchange in exchanges:  # every step that offers tools offers the MCP tool too; the others none
        offered = [t.model_name for t in exchange.request.mcp_tools]
        assert offered == ([MODEL_NAME] if exchange.request.tools else []), exchange.request
    [tool] = with_tools[0].request.mcp_tools
    assert tool.server == "time" and tool.policy == "allow" and "timezone" in json.dumps(tool.parameters)
    # llama-server's side: the code agent's first request, sent again as recorded (one token of answer), counts the
    # prompt tokens the worker's did, and more than without the MCP tool: its spec was in the prompt the model read
    first = with_tools[0]
    assert first.response is not None
    again = await chat(llama, first.request.model_copy(update={"max_tokens": 1}))
    without = await chat(llama, first.request.model_copy(update={"max_tokens": 1, "mcp_tools": []}))
    print(f"prompt tokens: {first.response.input_tokens} sent, {again.input_tokens} again, {without.input_tokens} "
          "without the MCP tool")  # fmt: skip
    assert first.response.input_tokens == again.input_tokens > without.input_tokens
    assert state.task_status == TaskStatus.COMPLETED, (state.errors, state.warnings)

    asked = [c for e in exchanges if e.response is not None for c in e.response.tool_calls if c.name == MODEL_NAME]
    events = (await handle.query(CodingTask.events, EventsQueryInput())).events
    recorded = [e for e in events if e.type == EventType.TOOL_CALL and e.data.get("tool") == TOOL]
    print(f"the model called {MODEL_NAME} {len(asked)} time(s): {[c.arguments for c in asked]}")
    for event in recorded:
        print(f"  {event.message}: {event.data['result'][:200]!r}")
    assert len(recorded) == len(asked)  # each call it made is a tool_call event carrying its result
    assert all(e.data["server"] == "time" and "result" in e.data for e in recorded)
    well_formed = [c for c in asked if not c.arguments_error]
    assert ran.count(MCP_CALL_TOOL_ACTIVITY) == len(well_formed)
    usage = state.tool_usage.get(TOOL)
    assert (usage.calls if usage else 0) == len(well_formed)
