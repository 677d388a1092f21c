"""One MCP tool call through the worker's pool (the process kept) against one with a new connection each time (the
process spawned and initialised for every call, as a client without a pool does).

    python -m bench.mcp_calls                    # mcp-server-git's git_log on a repository made here, 30 calls each
    python -m bench.mcp_calls --calls 100

Prints p50 and p95 of each, in milliseconds, and the ratio. The pooled calls go through `McpPool.session`, what
the `mcp_call_tool` activity uses; the spawned ones through the same `connect` the pool opens connections with.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
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
        server = ServerConfig(command=str(Path(sys.executable).parent / "mcp-server-git"),
                              args=["--repository", str(repo)])  # fmt: skip
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    asyncio.run(run(parser.parse_args().calls))


if __name__ == "__main__":
    main()
