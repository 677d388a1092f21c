"""An MCP server for the fault tests, built on the `mcp` SDK's own `MCPServer`: a tool that says its process id
(to kill it mid-call), one that sleeps, one that never answers, one with a huge result, one that writes a file.

    python -m tests.mcp.probe_server stdio
    python -m tests.mcp.probe_server http PORT
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
IDEMPOTENCY_KEY = "coding-orchestrator/idempotency-key"
server = MCPServer("probe")


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """This server's process id."""
    return str(os.getpid())


@server.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds} s in {os.getpid()}"


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return "unreachable"


@server.tool(annotations=READ_ONLY)
def huge(chars: int) -> str:
    """A result of `chars` characters."""
    return "x" * chars


@server.tool(annotations=READ_ONLY)
def key(ctx: Context) -> str:
    """The idempotency key the client sent in the request's `_meta`."""
    return str((ctx.request_context.meta or {}).get(IDEMPOTENCY_KEY))


@server.tool()
def note(path: str, text: str) -> str:
    """Append a line to a file (a side effect)."""
    with Path(path).open("a", encoding="utf-8") as file:
        file.write(text + "\n")
    return f"noted in {path}"


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
