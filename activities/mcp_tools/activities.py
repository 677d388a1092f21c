"""The MCP activities: `mcp_list_tools` (what a task's selection offers, once per task) and `mcp_call_tool` (one
call of one tool), over the worker's pooled connections (`pool`).

A tool that reports a failure (`isError`) is a result the model reads, not an activity failure. A JSON-RPC error
a retry cannot fix (unknown tool, invalid arguments, …) fails the call for good (non-retryable); a connection
that broke (the process died, the request timed out) is replaced, and the call fails retryable: the workflow's
retry policy for that tool decides whether it runs again (only read-only or idempotent tools are retried).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from typing import cast

from mcp import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_TIMEOUT,
    CallToolResult,
    RequestParamsMeta,
    Tool,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from activities.llm import heartbeating
from activities.mcp_tools.config import ServerConfig, load_servers
from activities.mcp_tools.pool import McpPool
from activities.metrics import instruments, outcome
from workflows.models import (
    MCP_CALL_TOOL_ACTIVITY,
    MCP_LIST_TOOLS_ACTIVITY,
    McpCallRequest,
    McpCallResult,
    McpListRequest,
    McpTool,
    McpToolList,
)

MAX_MCP_RESULT = 20_000  # characters of a tool's result the model reads; the rest is cut, and says so
LIST_TIMEOUT_SECONDS = 45.0  # a server's start and its tool list
# Sent in each call's `_meta`: the same for every attempt of one call, different for every call of every task, so a
# server that honours it can make a side-effecting tool run once however often the activity is retried.
IDEMPOTENCY_KEY = "coding-orchestrator/idempotency-key"
MODEL_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI and Anthropic accept as a tool's name
_NOT_RETRYABLE = {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS}
_BREAKS_CONNECTION = {CONNECTION_CLOSED, REQUEST_TIMEOUT}


def breaks_connection(exc: BaseException) -> bool:
    """Whether an error leaves the connection unfit for the next call (a JSON-RPC error answer does not)."""
    return not isinstance(exc, MCPError) or exc.code in _BREAKS_CONNECTION


def result_text(result: CallToolResult, limit: int = MAX_MCP_RESULT) -> tuple[str, int]:
    """(what the model reads of a tool's result, characters cut): text as it is, other content named."""
    parts: list[str] = []
    for block in result.content:
        match block.type:
            case "text":
                parts.append(block.text)
            case "image" | "audio":
                parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]")
            case "resource":
                text = getattr(block.resource, "text", None)
                parts.append(text if text is not None else f"[binary resource {block.resource.uri}, not shown]")
            case "resource_link":
                parts.append(f"[resource {block.uri}]")
            case other:
                parts.append(f"[{other} content, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    text = "\n".join(parts)
    if len(text) <= limit:
        return text, 0
    cut = len(text) - limit
    return f"{text[:limit]}\n… ({cut} characters cut)", cut


def offered(server: str, config: ServerConfig, tool: Tool) -> McpTool:
    hints = tool.annotations
    read_only = bool(hints and hints.read_only_hint)
    return McpTool(
        server=server,
        tool=tool.name,
        description=" ".join((tool.description or tool.title or "").split())[:1024],
        parameters=tool.input_schema,
        policy=config.policy(tool.name, read_only),
        retryable=read_only or bool(hints and hints.idempotent_hint),
    )


class McpActivities:
    """The configured servers (MCP_SERVERS_FILE, read once: McpConfigError stops the worker) and their pool."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.servers = load_servers(settings.mcp_servers_file)
        self.pool = McpPool(self.servers, idle_seconds=settings.mcp_idle_seconds)

    async def _server_tools(self, server: str) -> list[Tool]:
        async with self.pool.session(server, breaks_connection) as client:
            tools, cursor = [], None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                if not (cursor := page.next_cursor):
                    return tools

    @activity.defn(name=MCP_LIST_TOOLS_ACTIVITY)
    async def list_tools(self, request: McpListRequest) -> McpToolList:
        """The tools the selectors name, with their schemas and policies; what cannot be offered says why."""
        wanted: dict[str, set[str] | None] = defaultdict(set)
        for selector in request.selectors:
            server, _, tool = selector.partition(".")
            if not tool:
                wanted[server] = None
            elif (names := wanted[server]) is not None:
                names.add(tool)
        result = McpToolList()
        for server, names in wanted.items():
            config = self.servers.get(server)
            if config is None:
                result.unavailable[server] = "no such server in the worker's MCP_SERVERS_FILE"
                continue
            # a server that does not start is reported (the others are offered)
            try:
                tools = await asyncio.wait_for(heartbeating(self._server_tools(server)), LIST_TIMEOUT_SECONDS)
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                result.unavailable[server] = f"did not start or list its tools: {reason}"
                activity.logger.warning("MCP server %r unavailable: %s", server, reason)
                continue
            seen: set[str] = set()
            for listed in tools:
                if names is not None and listed.name not in names:
                    continue
                if listed.name in seen or not MODEL_TOOL_NAME.match(f"{server}__{listed.name}"):
                    why = "listed twice" if listed.name in seen else "its name is not a valid model tool name"
                    result.unavailable[f"{server}.{listed.name}"] = why
                    continue
                seen.add(listed.name)
                result.tools.append(offered(server, config, listed))
            for missing in sorted((names or set()) - seen):
                result.unavailable.setdefault(f"{server}.{missing}", "the server lists no such tool")
        return result

    @activity.defn(name=MCP_CALL_TOOL_ACTIVITY)
    async def call_tool(self, request: McpCallRequest) -> McpCallResult:
        name = f"{request.server}.{request.tool}"
        config = self.servers.get(request.server)
        if config is None:
            raise ApplicationError(f"{name}: no such server in MCP_SERVERS_FILE", type="McpUnknownServer",
                                   non_retryable=True)  # fmt: skip
        if config.policy(request.tool, read_only=None) == "deny":
            raise ApplicationError(f"{name} is denied by MCP_SERVERS_FILE", type="McpDenied", non_retryable=True)
        metrics = instruments()
        labels = {"server": request.server, "tool": request.tool}
        started = time.monotonic()
        info = activity.info()
        meta = cast(
            RequestParamsMeta, {IDEMPOTENCY_KEY: f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"}
        )
        result = "ok"
        try:
            async with self.pool.session(request.server, breaks_connection) as client:
                call = client.call_tool(request.tool, request.arguments, read_timeout_seconds=config.timeout_seconds,
                                        meta=meta)  # fmt: skip
                answer = await heartbeating(call)
            if answer.is_error:
                result = "tool_error"
        except MCPError as exc:
            result = "protocol_error"
            retryable = exc.code not in _NOT_RETRYABLE
            raise ApplicationError(f"{exc.message} (JSON-RPC {exc.code})", exc.code, type="McpError",
                                   non_retryable=not retryable) from None  # fmt: skip
        except Exception as exc:
            result = outcome(exc)[0]
            raise ApplicationError(f"the server failed: {exc or type(exc).__name__}",
                                   type="McpServerUnavailable") from exc  # fmt: skip
        finally:
            metrics.mcp_calls.add(1, {**labels, "outcome": result})
            metrics.mcp_latency.record(time.monotonic() - started, labels)
        text, cut = result_text(answer)
        duration = int((time.monotonic() - started) * 1000)
        activity.logger.info("mcp %s (model call %s): %s, %d characters (%d cut), %d ms", name, request.call_id,
                             result, len(text), cut, duration)  # fmt: skip
        return McpCallResult(text=text, is_error=bool(answer.is_error), chars_cut=cut, duration_ms=duration)

    async def aclose(self) -> None:
        await self.pool.aclose()
