"""The worker's MCP connections: one process per server, reused by every call, closed when idle and when the
worker stops (no process left), and the tool list an activity builds from them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.mcp_tools import McpActivities, McpPool, ServerConfig
from activities.mcp_tools.activities import breaks_connection
from orchestrator.plugin import OrchestratorPlugin
from tests.mcp.conftest import pypi_server
from tests.support import ROOT, wait_until
from workflows.models import McpCallRequest, McpListRequest

PROBE = ServerConfig(command=sys.executable, args=["-m", "tests.mcp.probe_server", "stdio"], cwd=str(ROOT))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def probe_pid(pool: McpPool) -> int:
    async with pool.session("probe", breaks_connection) as client:
        result = await client.call_tool("pid", {})
    return int(result.content[0].text)  # type: ignore[union-attr]


async def test_one_process_serves_every_call_and_none_is_left_when_the_pool_closes() -> None:
    pool = McpPool({"probe": PROBE})
    try:
        pids = [await probe_pid(pool) for _ in range(3)]
        together = await asyncio.gather(*(probe_pid(pool) for _ in range(5)))
        assert len(set(pids) | set(together)) == 1 and pool.opened == 1
    finally:
        await pool.aclose()
    assert not alive(pids[0]) and pool.open_servers == []


async def test_an_idle_connection_is_closed_and_the_next_call_opens_one() -> None:
    pool = McpPool({"probe": PROBE}, idle_seconds=0.3)
    try:
        first = await probe_pid(pool)
        await wait_until(lambda: not alive(first), within=10)
        assert pool.open_servers == []
        second = await probe_pid(pool)
        assert second != first and pool.opened == 2
    finally:
        await pool.aclose()
    assert not alive(second)


async def test_the_tool_list_names_what_it_cannot_offer(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    probe = {"command": sys.executable, "args": ["-m", "tests.mcp.probe_server", "stdio"], "cwd": str(ROOT)}
    servers = {
        "time": pypi_server("mcp_server_time"),
        "broken": {"command": "/no/such/server"},
        "probe": {**probe, "approval": {"note": "deny"}},
    }
    config.write_text(json.dumps({"mcpServers": servers}))
    mcp = McpActivities(WorkerSettings(_env_file=None, mcp_servers_file=str(config)))
    env = ActivityEnvironment()
    try:
        request = McpListRequest(selectors=["time", "probe.note", "probe.hang", "probe.nope", "broken", "ghost"])
        listed = await env.run(mcp.list_tools, request)
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == {"time.get_current_time", "time.convert_time", "probe.note", "probe.hang"}
        assert tools["time.get_current_time"].policy == "allow" and tools["time.get_current_time"].retryable
        assert tools["probe.note"].policy == "deny" and tools["probe.hang"].policy == "ask"  # no annotation: ask
        assert not tools["probe.hang"].retryable
        assert tools["time.convert_time"].model_name == "time__convert_time"
        assert "target_timezone" in tools["time.convert_time"].parameters["properties"]
        assert listed.unavailable["probe.nope"] == "the server lists no such tool"
        assert listed.unavailable["ghost"] == "no such server in the worker's MCP_SERVERS_FILE"
        assert listed.unavailable["broken"].startswith("did not start or list its tools")

        answer = await env.run(mcp.call_tool, McpCallRequest(server="time", tool="get_current_time",
                                                              arguments={"timezone": "Asia/Tokyo"}))  # fmt: skip
        assert '"timezone": "Asia/Tokyo"' in answer.text and not answer.is_error
        failed = await env.run(mcp.call_tool, McpCallRequest(server="time", tool="get_current_time",
                                                              arguments={"timezone": "Mars/Olympus"}))  # fmt: skip
        assert failed.is_error  # the tool's own failure: data for the model
    finally:
        await mcp.aclose()


def test_the_spawn_vs_pooled_benchmark_runs() -> None:
    """`python -m bench.mcp_calls` end to end (few calls): it cannot rot. Timings are never asserted."""
    proc = subprocess.run([sys.executable, "-m", "bench.mcp_calls", "--calls", "3"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "spawned per call: p50" in proc.stdout and "(1 process for 4 pooled calls)" in proc.stdout


async def test_the_worker_stops_its_mcp_servers_when_it_stops(mcp_plugin: OrchestratorPlugin) -> None:
    """The plugin's resource lifetime (what `Worker` runs the worker in) ends every server process it started."""
    activities = mcp_plugin.worker_activities
    assert activities is not None
    async with activities.running():
        pid = await probe_pid(activities.mcp.pool)
        assert alive(pid)
    assert not alive(pid) and activities.mcp.pool.open_servers == []
