"""MCP_SERVERS_FILE: what the worker accepts, and what makes it refuse to start (naming the server and why)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mcp.types import CallToolResult, TextContent

from activities.config import WorkerSettings
from activities.mcp_tools import McpConfigError, load_servers, parse_servers
from activities.mcp_tools.activities import result_text
from orchestrator.plugin import OrchestratorPlugin
from tests.support import ROOT


def test_stdio_and_http_servers_with_variables_from_the_worker_environment() -> None:
    text = json.dumps({"mcpServers": {
        "git": {"command": "mcp-server-git", "args": ["--repository", "${REPO}"], "env": {"TOKEN": "${GIT_TOKEN}"},
                "approval": {"git_commit": "ask", "git_reset": "deny"}},
        "docs": {"type": "http", "url": "http://docs/mcp", "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"},
                 "approval": "allow"},
    }})  # fmt: skip
    servers = parse_servers(text, {"REPO": "/srv/repo", "GIT_TOKEN": "t0k", "DOCS_TOKEN": "d0k"})
    git, docs = servers["git"], servers["docs"]
    assert git.transport == "stdio" and git.args == ["--repository", "/srv/repo"] and git.env == {"TOKEN": "t0k"}
    assert docs.transport == "http" and docs.headers == {"Authorization": "Bearer d0k"}
    assert git.policy("git_commit", read_only=False) == "ask" and git.policy("git_reset", read_only=True) == "deny"
    assert git.policy("git_log", read_only=True) == "allow"  # the map is silent: the annotations decide
    assert git.policy("git_push", read_only=False) == "ask"
    assert docs.policy("anything", read_only=False) == "allow"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", 'expected an object {"mcpServers"'),
        ('{"mcpServers": {"git": {"command": "a"}, "git": {"command": "b"}}}', "'git' given more than once"),
        ('{"mcpServers": {"git": {}}}', "MCP server 'git': value: Value error, unknown transport"),
        ('{"mcpServers": {"git": {"command": "a", "url": "http://x"}}}', "'git': value: Value error, unknown"),
        ('{"mcpServers": {"old": {"type": "sse", "url": "http://x/sse"}}}', "MCP server 'old': type: Input should be"),
        ('{"mcpServers": {"web": {"type": "stdio", "url": "http://x"}}}', "'web': value: Value error, type 'stdio'"),
        ('{"mcpServers": {"web": {"url": "ftp://x"}}}', "MCP server 'web': url: String should match"),
        ('{"mcpServers": {"git": {"command": "a", "approval": "maybe"}}}', "MCP server 'git': approval"),
        ('{"mcpServers": {"git": {"command": "a", "comand": "b"}}}', "MCP server 'git': comand: Extra inputs"),
        ('{"mcpServers": {"my__git": {"command": "a"}}}', "MCP server 'my__git': a name is at most 32"),
        ('{"mcpServers": {"git.hub": {"command": "a"}}}', "MCP server 'git.hub': a name is at most 32"),
        ('{"mcpServers": {"git": {"command": "a", "env": {"T": "${NOT_SET_ANYWHERE}"}}}}',
         "MCP server 'git': ${NOT_SET_ANYWHERE} is not set in the worker's environment"),
    ],
)  # fmt: skip
def test_an_unusable_file_is_refused_naming_the_server_and_the_reason(config: str, message: str) -> None:
    with pytest.raises(McpConfigError) as refused:
        parse_servers(config, {})
    assert message in str(refused.value)


def test_the_worker_refuses_to_start_with_an_unusable_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"git": {"command": "mcp-server-git", "args": ["${NO_SUCH_VARIABLE_HERE}"]}}}')
    reason = f"MCP_SERVERS_FILE {path}: MCP server 'git': ${{NO_SUCH_VARIABLE_HERE}} is not set in the worker's"
    with pytest.raises(McpConfigError, match=re.escape(reason)):
        OrchestratorPlugin(WorkerSettings(_env_file=None, mcp_servers_file=str(path)))
    with pytest.raises(McpConfigError, match="No such file or directory"):
        load_servers(str(tmp_path / "missing.json"))
    assert load_servers(None) == {}


def test_a_result_is_capped_and_says_so() -> None:
    result = CallToolResult(content=[TextContent(type="text", text="a" * 50), TextContent(type="text", text="b")])
    assert result_text(result, limit=100) == ("a" * 50 + "\nb", 0)
    text, cut = result_text(result, limit=10)
    assert text == "a" * 10 + "\n… (42 characters cut)" and cut == 42
    structured = CallToolResult(content=[], structured_content={"n": 1})
    assert result_text(structured) == ('{"n": 1}', 0)


def test_the_config_file_of_the_docs_is_accepted() -> None:
    doc = (ROOT / "docs" / "mcp.md").read_text()
    block = doc.split("<!-- mcp-config -->\n```json\n", 1)[1].split("```", 1)[0]
    servers = parse_servers(block, {"GIT_REPO": "/srv/repo", "DOCS_TOKEN": "d0k"})
    assert set(servers) == {"git", "time", "docs"} and servers["docs"].headers == {"Authorization": "Bearer d0k"}
    assert servers["git"].policy("git_reset", read_only=False) == "deny" and servers["docs"].timeout_seconds == 20
