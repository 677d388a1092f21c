"""An `ask` tool (mcp-server-git's git_commit) waits in `awaiting_approval` and runs once approved: through the
gateway (`POST /approve/{session_id}`, owner-checked, bad decisions refused) and through the `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from testbed.llm_server import FakeLlmServer
from tests.gateway.support import ALICE, BOB, asgi_client, make_app, wait_for_status
from tests.mcp.conftest import git
from tests.mcp.test_agent_tools import approval_state, finish, tool_results
from tests.support import ROOT, binary, start_task
from workflows.coding_task import CodingTask
from workflows.models import TaskStatus


def documented_update(workflow_id: str, decision: str) -> list[str]:
    """The `temporal workflow update execute` command of docs/mcp.md with this task's id and this decision."""
    text = (ROOT / "docs" / "mcp.md").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("temporal workflow update execute")]
    words = shlex.split(line)
    replaced = {"--workflow-id": workflow_id, "--input": decision}
    return [binary("temporal")] + [replaced.get(words[i - 1], word) for i, word in enumerate(words) if i]


def commit_task(repo: Path) -> dict[str, object]:
    return {
        "task_description": f'[tool git__git_commit {{"repo_path": "{repo}", "message": "add staged.txt"}}]',
        "mcp_tools": ["git.git_commit", "git.git_log"],
        "feedback_window_seconds": 300,
    }


async def test_an_ask_tool_is_approved_through_the_gateway(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str, git_repo: Path
) -> None:
    session_id = f"mcp-{uuid.uuid4().hex[:12]}"
    async with asgi_client(make_app(task_queue, client)) as http:
        body = {**commit_task(git_repo), "session_id": session_id}
        assert (await http.post("/invoke?stream=false", json=body, headers=ALICE)).status_code == 202
        waiting = await wait_for_status(http, session_id, {"awaiting_approval"}, ALICE)
        [pending] = waiting["pending_approvals"]
        assert pending["tool"] == "git.git_commit" and pending["arguments"]["message"] == "add staged.txt"
        assert git(git_repo, "log", "--format=%s") == "first commit\n"  # nothing ran yet

        call_id = pending["call_id"]
        refused = [
            (BOB, {"call_id": call_id, "approved": True}, 404),  # another tenant's task
            (ALICE, {"call_id": "call-99", "approved": True}, 409),  # no such call waits: a state conflict
            (ALICE, {"call_id": call_id}, 422),  # no decision
            (ALICE, {"call_id": call_id, "approved": "yes"}, 422),  # strict: a bool
            (ALICE, {"call_id": call_id, "approved": True, "extra": 1}, 422),
        ]
        for headers, bad, code in refused:
            answer = await http.post(f"/approve/{session_id}", json=bad, headers=headers)
            assert answer.status_code == code, (bad, answer.text)
        assert (await http.get(f"/status/{session_id}", headers=ALICE)).json()["task_status"] == "awaiting_approval"

        approved = await http.post(f"/approve/{session_id}", json={"call_id": call_id, "approved": True}, headers=ALICE)
        assert approved.status_code == 200 and approved.json()["tool"] == "git.git_commit", approved.text
        again = await http.post(f"/approve/{session_id}", json={"call_id": call_id, "approved": True}, headers=ALICE)
        assert again.status_code == 409 and "waits for no approval" in again.json()["detail"]

        await wait_for_status(http, session_id, {"awaiting_feedback"}, ALICE)
        assert (await http.post(f"/feedback/{session_id}", json={"rating": 5}, headers=ALICE)).status_code == 202
        final = await wait_for_status(http, session_id, {"completed"}, ALICE)
        ended = await http.post(f"/approve/{session_id}", json={"call_id": call_id, "approved": True}, headers=ALICE)
        assert ended.status_code == 409 and "has ended" in ended.json()["detail"]
    assert git(git_repo, "log", "--format=%s") == "add staged.txt\nfirst commit\n"  # committed once
    assert "Changes committed successfully" in tool_results(fake_llm)["git__git_commit"]
    assert final["tool_usage"]["git.git_commit"] == {"calls": 1, "errors": 0, "denied": 0}


async def test_an_ask_tool_is_approved_through_the_cli(
    client: Client, mcp_worker: Worker, fake_llm: FakeLlmServer, task_queue: str, git_repo: Path
) -> None:
    handle = await start_task(client, task_queue, True, **commit_task(git_repo))
    [pending] = (await approval_state(handle)).pending_approvals
    decision = json.dumps({"call_id": pending.call_id, "approved": True, "reason": "looks right"})
    command = documented_update(handle.id, decision)  # what docs/mcp.md shows, on this task, approving
    command += ["--address", client.service_client.config.target_host]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tool:git.git_commit" in done.stdout  # the update answers the call it decided
    final = await finish(handle)
    assert final.task_status == TaskStatus.COMPLETED
    assert git(git_repo, "log", "--format=%s") == "add staged.txt\nfirst commit\n"
    again = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0  # the task has ended: the validator refuses, nothing runs
    assert await handle.query(CodingTask.status) == final
