"""One MCP tool call through the worker's pool (the process kept) against one with a new connection each time (the
process spawned and initialised for every call, as a client without a pool does).

    python -m bench.mcp_calls                    # mcp-server-git's git_log on a repository made here, 30 calls each
    python -m bench.mcp_calls --calls 100
    python -m bench.mcp_calls --task-cpu 10      # also: CPU of a task with 3 MCP calls beside one with none

Prints p50 and p95 of each, in milliseconds, and the ratio. The pooled calls go through `McpPool.session`, what
the `mcp_call_tool` activity uses; the spawned ones through the same `connect` the pool opens connections with.

`--task-cpu N` starts the benchmark harness's environment (a Temporal dev server, the fake providers and the
product worker, each its own process; the worker with MCP_SERVERS_FILE naming mcp-server-time) and runs N tasks
one after the other of each kind: the code agent's first turn calls the built-in tools (a knowledge-base search and
a lint), or three MCP tools instead (`time.get_current_time` twice, `time.convert_time`; the task lists its tools
once). It prints the CPU seconds per task of each process: the worker, its children (the pylint pool and the MCP
server), the Temporal server. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities.mcp_tools import McpPool, ServerConfig  # noqa: E402
from activities.mcp_tools.activities import breaks_connection  # noqa: E402
from activities.mcp_tools.pool import connect  # noqa: E402


def make_repo(path: Path) -> None:
    for args in (["init", "-q"], ["config", "user.email", "b@e"], ["config", "user.name", "bench"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(path), "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "first"], check=True)


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples) * 1000, cuts[18] * 1000


async def run(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        make_repo(repo)
        # `python -m`: a console script's first line names the interpreter it was installed with (moved venvs)
        server = ServerConfig(command=sys.executable, args=["-m", "mcp_server_git", "--repository", str(repo)])
        arguments = {"repo_path": str(repo)}

        spawned = []
        for _ in range(calls):
            started = time.perf_counter()
            async with connect(server) as client:
                await client.call_tool("git_log", arguments)
            spawned.append(time.perf_counter() - started)

        pool = McpPool({"git": server})
        pooled = []
        try:
            async with pool.session("git", breaks_connection) as client:  # the first call opens the connection
                await client.call_tool("git_log", arguments)
            for _ in range(calls):
                started = time.perf_counter()
                async with pool.session("git", breaks_connection) as client:
                    await client.call_tool("git_log", arguments)
                pooled.append(time.perf_counter() - started)
        finally:
            await pool.aclose()
    (s50, s95), (p50, p95) = quantiles(spawned), quantiles(pooled)
    print(f"mcp-server-git git_log, {calls} calls each")
    print(f"  spawned per call: p50 {s50:7.1f} ms   p95 {s95:7.1f} ms")
    print(f"  pooled:           p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    print(f"  pooled is {s50 / p50:.0f}x faster at p50 ({pool.opened} process for {calls + 1} pooled calls)")


MCP_TASK = (
    'What time is it? [tool time__get_current_time {"timezone": "UTC"}] '
    '[tool time__get_current_time {"timezone": "Asia/Tokyo"}] '
    '[tool time__convert_time {"source_timezone": "UTC", "time": "10:00", "target_timezone": "Europe/Paris"}]'
)


async def task_cpu(tasks: int) -> None:
    from bench.harness import children_of, cpu_seconds, environment  # the harness's processes and their CPU
    from workflows.coding_task import CodingTask
    from workflows.models import CodingTaskInput, TaskStatus

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mcp.json"
        config.write_text(
            json.dumps({"mcpServers": {"time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]}}})
        )
        async with environment(None, [], {"MCP_SERVERS_FILE": str(config)}) as bench:
            procs = bench.procs

            def cpu() -> dict[str, float]:
                children = children_of(procs.worker)
                return {"worker": cpu_seconds(procs.worker), "worker children": sum(map(cpu_seconds, children)),
                        "temporal server": cpu_seconds(procs.server)}  # fmt: skip

            async def batch(description: str, mcp_tools: list[str] | None) -> dict[str, float]:
                before = cpu()
                for n in range(tasks):
                    task = CodingTaskInput(task_description=f"{description} ({n})", feedback_window_seconds=0,
                                           mcp_tools=mcp_tools)  # fmt: skip
                    workflow_id = f"mcp-cpu-{uuid.uuid4().hex[:10]}"
                    state = await bench.client.execute_workflow(CodingTask.run, task, id=workflow_id,
                                                                task_queue=bench.task_queue)  # fmt: skip
                    assert state.task_status == TaskStatus.COMPLETED, state.errors
                after = cpu()
                return {name: (after[name] - before[name]) / tasks for name in after}

            await batch("warm up: write an add function", None)
            await batch(MCP_TASK, ["time"])
            plain = await batch("write an add function", None)
            with_mcp = await batch(MCP_TASK, ["time"])
    print(f"CPU seconds per task, {tasks} tasks each, one at a time")
    for name in plain:
        print(f"  {name:16} no MCP {plain[name]:.3f}   3 MCP calls {with_mcp[name]:.3f}"
              f"   difference {with_mcp[name] - plain[name]:+.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--task-cpu", type=int, default=0, metavar="N", help="also run N tasks of each kind")
    args = parser.parse_args()
    asyncio.run(run(args.calls))
    if args.task_cpu:
        asyncio.run(task_cpu(args.task_cpu))


if __name__ == "__main__":
    main()
