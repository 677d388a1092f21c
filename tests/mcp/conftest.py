"""Fixtures of the MCP tests: real MCP servers (PyPI's mcp-server-git and mcp-server-time over stdio, the probe
server over stdio and over streamable HTTP), a config file naming them, and a worker that uses it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.plugin import OrchestratorPlugin
from tests.support import ROOT, free_port


def pypi_server(module: str, *args: str) -> dict[str, Any]:
    """A PyPI MCP server's config entry, run as `python -m <module>`: its console script's first line names the
    interpreter it was installed with, which is wrong once the virtualenv is shared or moved."""
    return {"command": sys.executable, "args": ["-m", module, *args]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A repository with one commit and one staged file (what `git_commit` would commit)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "first commit")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    return repo


@pytest.fixture(scope="session")
def http_probe() -> Iterator[str]:
    """The probe server over streamable HTTP (a process of its own); its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.mcp.probe_server", "http", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the probe HTTP server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def servers_config(git_repo: Path, http_url: str) -> dict[str, Any]:
    probe = {"command": sys.executable, "args": ["-m", "tests.mcp.probe_server", "stdio"], "cwd": str(ROOT)}
    return {
        "mcpServers": {
            "git": {**pypi_server("mcp_server_git", "--repository", str(git_repo)), "approval": {"git_reset": "deny"}},
            "time": pypi_server("mcp_server_time", "--local-timezone", "UTC"),
            "probe": {**probe, "timeout_seconds": 2, "approval": {"hang": "allow"}},
            "web": {"url": http_url},
        }
    }


@pytest.fixture
def mcp_config(tmp_path: Path, git_repo: Path, http_probe: str) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(servers_config(git_repo, http_probe)))
    return path


@pytest.fixture
def mcp_settings(worker_settings: WorkerSettings, mcp_config: Path) -> WorkerSettings:
    return worker_settings.model_copy(update={"mcp_servers_file": str(mcp_config)})


@pytest.fixture
async def mcp_plugin(mcp_settings: WorkerSettings) -> OrchestratorPlugin:
    return OrchestratorPlugin(mcp_settings)


@pytest.fixture
async def mcp_worker(
    client: Client, mcp_settings: WorkerSettings, mcp_plugin: OrchestratorPlugin
) -> AsyncIterator[Worker]:
    async with Worker(client, task_queue=mcp_settings.temporal_task_queue, plugins=[mcp_plugin]) as worker:
        yield worker
