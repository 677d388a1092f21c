"""MCP_SERVERS_FILE: the MCP servers whose tools the agents may use, in the shape MCP clients already read.

    {"mcpServers": {
        "git":  {"command": "mcp-server-git", "args": ["--repository", "/srv/repo"], "env": {"TOKEN": "${GIT_TOKEN}"},
                 "approval": {"git_commit": "ask", "git_reset": "deny"}},
        "docs": {"url": "http://docs.internal/mcp", "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"},
                 "approval": "allow"}}}

A server runs over stdio (`command`, `args`, `env`, `cwd`) or streamable HTTP (`url`, `headers`); `type`, when
given, must say the same (`stdio`, `http` / `streamable-http`). `${VAR}` in `args`, `env`, `url` and `headers` is the
worker's environment variable VAR, read here once: secrets live in the worker's environment, never in a task's
input or history. `approval` is one policy (`allow` / `ask` / `deny`) for all of a server's tools or a map of tool
name to policy; where it says nothing, the tool's annotations decide (`readOnlyHint` → allow, else ask).
`timeout_seconds` bounds one call (default 30).

A file that cannot be read or parsed, a server without a known transport, a name that is not `[A-Za-z0-9]` words
joined by single `-` or `_`, a `${VAR}` that is not set: the worker refuses to start (`McpConfigError`, naming the
server and the reason). A server that does not start is found at its first use: the task's tool list says it is
unavailable, and why, and the task goes on without its tools.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workflows.models import MCP_SERVER_PATTERN, McpPolicy
from workflows.tools import validation_problems

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpConfigError(ValueError):
    """MCP_SERVERS_FILE is unusable; the message names the server and what is wrong."""


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    approval: McpPolicy | dict[str, McpPolicy] | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("unknown transport: give `command` (stdio) or `url` (streamable HTTP), one of them")
        if self.type is not None and (self.type == "stdio") != (self.command is not None):
            raise ValueError(f"type {self.type!r} does not match {'command' if self.command else 'url'}")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def policy(self, tool: str, read_only: bool | None) -> McpPolicy:
        """The approval policy of one of this server's tools: the config's, else its annotations'."""
        if isinstance(self.approval, str):
            return self.approval
        if self.approval and tool in self.approval:
            return self.approval[tool]
        return "allow" if read_only else "ask"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise McpConfigError(f"{', '.join(map(repr, duplicates))} given more than once")
    return dict(pairs)


def _expand(value: str, server: str, environ: dict[str, str]) -> str:
    def variable(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in environ:
            raise McpConfigError(f"MCP server {server!r}: ${{{name}}} is not set in the worker's environment")
        return environ[name]

    return _VARIABLE.sub(variable, value)


def _expanded(server: str, config: ServerConfig, environ: dict[str, str]) -> ServerConfig:
    return config.model_copy(
        update={
            "args": [_expand(arg, server, environ) for arg in config.args],
            "env": {key: _expand(value, server, environ) for key, value in config.env.items()},
            "url": _expand(config.url, server, environ) if config.url else None,
            "headers": {key: _expand(value, server, environ) for key, value in config.headers.items()},
        }
    )


def parse_servers(text: str, environ: dict[str, str] | None = None) -> dict[str, ServerConfig]:
    """The servers of a config file's text, `${VAR}` expanded from `environ` (default: the worker's)."""
    environ = dict(os.environ) if environ is None else environ
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise McpConfigError('expected an object {"mcpServers": {name: server, ...}}')
    servers: dict[str, ServerConfig] = {}
    for name, entry in data["mcpServers"].items():
        if not re.match(MCP_SERVER_PATTERN, name) or len(name) > 32:
            raise McpConfigError(
                f"MCP server {name!r}: a name is at most 32 letters or digits joined by single '-' or '_'"
            )
        try:
            config = ServerConfig.model_validate(entry)
        except ValidationError as exc:
            raise McpConfigError(f"MCP server {name!r}: {validation_problems(exc)}") from None
        servers[name] = _expanded(name, config, environ)
    return servers


def load_servers(path: str | None) -> dict[str, ServerConfig]:
    """MCP_SERVERS_FILE's servers; none when it is not set."""
    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise McpConfigError(f"MCP_SERVERS_FILE {path}: {exc.strerror or exc}") from None
    try:
        return parse_servers(text)
    except McpConfigError as exc:
        raise McpConfigError(f"MCP_SERVERS_FILE {path}: {exc}") from None
