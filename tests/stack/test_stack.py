"""`make run`'s launcher brings the whole stack up with no API key; the README's CLI example works as written."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.stack.launcher import RunningStack
from tests.support import ROOT, TEST_API_KEY, SecretScan, binary


def readme_block(marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```\s*<!-- /{marker} -->", readme, re.DOTALL)
    assert section, f"README.md has no ```bash block between <!-- {marker} --> markers"
    return section.group(1)


def readme_section_blocks(section: str, doc: str = "README.md") -> list[str]:
    """Every ```bash block of one section of the README (or of a page under docs/), in order."""
    readme = (ROOT / doc).read_text(encoding="utf-8")
    body = readme[readme.index(f"<!-- section:{section} -->") : readme.index(f"<!-- /section:{section} -->")]
    return re.findall(r"```bash\n(.*?)```", body, re.DOTALL)


def curl_commands(block: str) -> list[str]:
    """The `curl` commands of a shell block, each with its continuation lines."""
    commands: list[str] = []
    current: str | None = None
    for line in block.splitlines():
        if current is None and not line.startswith("curl"):
            continue
        current = line if current is None else f"{current}\n{line}"
        if not current.rstrip().endswith("\\"):
            commands.append(current)
            current = None
    return commands


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    """The launcher, up; in the teardown everything it started is stopped by pid, even if the test failed."""
    running = RunningStack.start(tmp_path)
    try:
        running.wait_until_up()
        yield running
    finally:
        running.kill_everything()


@pytest.mark.timeout(300)
async def scan_stack_histories(env: dict[str, str], secret_scan: SecretScan) -> None:
    await secret_scan.scan(await Client.connect(env["TEMPORAL_ADDRESS"]))


def test_stack_runs_the_readme_cli_example_offline_and_stops_on_ctrl_c(
    stack: RunningStack, secret_scan: SecretScan
) -> None:
    proc, env = stack.proc, stack.env
    ports = {name: int(env[name]) for name in ("TEMPORAL_PORT", "TEMPORAL_UI_PORT", "MEMORY_API_PORT", "GATEWAY_PORT")}
    cli_env = {**env, "PATH": f"{Path(binary('temporal')).parent}:{env['PATH']}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block("cli-example")], env=cli_env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr

    deadline = time.monotonic() + 120
    while True:
        query = subprocess.run(
            [binary("temporal"), "workflow", "query", "--workflow-id", "demo-1", "--name", "status", "-o", "json"],
            env=cli_env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert query.returncode == 0, query.stderr
        state = json.loads(query.stdout)["queryResult"][0]
        if state["task_status"] == "awaiting_feedback" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert state["task_status"] == "awaiting_feedback", state
    assert "OFFLINE PLACEHOLDER" in state["plan"]
    code = state["results"]["code_generation"]
    assert "def " in code["code"] and code["lint"]["score"] is not None
    assert "OFFLINE PLACEHOLDER" in state["results"]["documentation"]["documentation"]
    assert any("OPENAI_API_KEY is not set" in w for w in state["warnings"])
    assert not any("knowledge base unavailable" in w for w in state["warnings"])  # the memory API answered

    # The Web UI's and the CLI's filters: the search attributes `make run` registers are kept current.
    listed = subprocess.run(
        [binary("temporal"), "workflow", "list", "--query", 'TaskStatus="awaiting_feedback"', "-o", "json"],
        env=cli_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "demo-1" in {w["execution"]["workflowId"] for w in json.loads(listed.stdout)}
    metrics = httpx.get(f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics", timeout=10).text
    assert "temporal_" in metrics and "orchestrator_llm_calls" in metrics

    # The gateway section's curl examples, as written (but for the port and the key's source).
    outputs = []
    for block in readme_section_blocks("gateway", "docs/gateway.md"):
        if "python -m" in block or "export KEY=" in block:
            continue  # starting servers / reading .env: the stack did both
        script = block.replace("localhost:8002", f"localhost:{ports['GATEWAY_PORT']}")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env={**cli_env, "KEY": TEST_API_KEY},
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, (block, run.stderr)
        outputs.append(run.stdout)
    sse, accepted, resumed, status, budget, feedback, cancel, health, metrics = outputs
    assert "event: session" in sse and "event: end" in sse and '"task_status":"awaiting_feedback"' in sse
    assert json.loads(accepted)["session_id"] == "http-2"
    ids = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    counts = Counter(ids)  # the block resumes twice (Last-Event-ID, ?after): each stream from event 6, none twice
    assert counts and min(counts) == 6 and set(counts.values()) == {2}
    assert json.loads(status)["session_id"] == "http-1"
    raised = json.loads(budget)
    assert raised["budget_usd"] == 5.0 and raised["spent_usd"] == 0.0 and raised["spent_tokens"] > 0
    assert json.loads(feedback) == {"session_id": "http-1", "accepted": True}
    assert json.loads(cancel) == {"session_id": "http-2", "outcome": "cancel_requested", "workflow_status": "RUNNING"}
    assert json.loads(health)["status"] == "healthy"
    assert "gateway_tasks_started_total" in metrics

    # The memory page's curl examples against the stack's memory API.
    memory_env = {**cli_env, "ORCHESTRATOR_API_KEY": TEST_API_KEY}
    for block in readme_section_blocks("memory", "docs/memory.md"):
        for command in curl_commands(block):
            script = command.replace("localhost:8001", f"localhost:{ports['MEMORY_API_PORT']}")
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=memory_env,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
            assert run.returncode == 0 and '"detail"' not in run.stdout, (script, run.stdout, run.stderr)
            assert json.loads(run.stdout)

    asyncio.run(scan_stack_histories(env, secret_scan))  # the CLI's and the gateway's tasks, before the stop

    proc.send_signal(signal.SIGINT)  # Ctrl-C stops everything the launcher started
    assert proc.wait(timeout=60) == 0
    stack.assert_all_gone()
