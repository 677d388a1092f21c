"""The CLI scripting guide of docs/operations.md, executed: every ```bash block between the cli-guide markers runs,
in order, with the real `temporal` binary against the dev server, and its JSON output must match the ```json block
after it.

Matching: every key shown must be there with a matching value; a string containing "…" matches anything; a list
shown matches when some element of the real list matches its first element; an empty dict or list shown matches
any dict or list. The guide's names are swapped for per-test ones: the task queue `coding-tasks`, the workflow ids
`my-task-1` / `my-task-2` and the tenant `alice`. A step is retried (up to a deadline) until its output matches,
because a task moves on its own and the visibility store is eventually consistent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.support import ROOT, binary
from workflows.models import TASK_QUEUE

GUIDE_PAGE = ROOT / "docs" / "operations.md"
GUIDE = re.compile(r"<!-- cli-guide -->(.*?)<!-- /cli-guide -->", re.DOTALL)
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
STEP_DEADLINE = 60.0


@dataclass
class Step:
    script: str
    expected: Any | None  # parsed JSON block after it, if any


def guide_steps() -> list[Step]:
    text = GUIDE_PAGE.read_text(encoding="utf-8")
    match = GUIDE.search(text)
    assert match, "docs/operations.md has no <!-- cli-guide --> section"
    section = match.group(1)
    steps: list[Step] = []
    blocks = list(FENCE.finditer(section))
    for index, block in enumerate(blocks):
        if block.group(1) != "bash":
            continue
        expected = None
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following and following.group(1) == "json" and not section[block.end() : following.start()].strip():
            expected = json.loads(following.group(2))
        steps.append(Step(block.group(2), expected))
    return steps


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and "…" in expected:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and (not expected or any(matches(expected[0], item) for item in actual))
    return bool(expected == actual)


def json_documents(output: str) -> list[Any]:
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(output):
        if output[position].isspace():
            position += 1
            continue
        document, position = decoder.raw_decode(output, position)
        documents.append(document)
    return documents


def substitute(text: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        text = text.replace(old, new)
    return text


def substitute_json(value: Any, names: dict[str, str]) -> Any:
    return json.loads(substitute(json.dumps(value, ensure_ascii=False), names))


def run_bash(script: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_guide_has_every_documented_operation() -> None:
    scripts = "\n".join(step.script for step in guide_steps())
    for needed in (
        "temporal workflow start",
        "temporal workflow signal",
        "--name feedback",
        "temporal workflow query",
        "--name status",
        "temporal workflow list --query 'TaskStatus=",
        "temporal workflow cancel",
        "temporal workflow reset",
        "temporal workflow update execute",
        "--name raise_budget",
        "LintGate=",
        "CostUsd",
    ):
        assert needed in scripts, needed
    for step in guide_steps():
        assert "tctl" not in step.script


async def test_cli_guide_commands_run_against_the_dev_server(
    temporal_env: WorkflowEnvironment, client: Client, worker: Worker, task_queue: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {
        TASK_QUEUE: task_queue,
        "my-task-1": f"guide-1-{suffix}",
        "my-task-2": f"guide-2-{suffix}",
        '"alice"': f'"tenant-{suffix}"',
    }
    environ = {
        **os.environ,
        "PATH": f"{os.path.dirname(binary('temporal'))}{os.pathsep}{os.environ.get('PATH', '')}",
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
    }
    environ.pop("TEMPORAL_API_KEY", None)
    steps = guide_steps()
    assert len(steps) >= 8
    first_run_id = None
    for number, step in enumerate(steps, 1):
        script = substitute(step.script, names)
        expected = substitute_json(step.expected, names) if step.expected is not None else None
        deadline = time.monotonic() + STEP_DEADLINE
        while True:
            done = await asyncio.to_thread(run_bash, script, environ)
            assert done.returncode == 0, f"step {number} failed:\n{script}\n{done.stdout}\n{done.stderr}"
            try:
                documents = json_documents(done.stdout) if "-o json" in script else []
            except ValueError as exc:
                if expected is None:  # a step that shows no output (e.g. start + cancel, which prints a line)
                    documents = []
                    break
                raise AssertionError(f"step {number} printed no JSON ({exc}):\n{script}\n{done.stdout}") from None
            if expected is None or any(matches(expected, d) for d in documents):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"step {number} output never matched docs/operations.md:\n{script}\n{done.stdout}")
            await asyncio.sleep(0.5)
        if "workflow start" in script and names["my-task-1"] in script:
            first_run_id = documents[0]["runId"]
        if "workflow reset" in script:  # a new run of the same workflow, which carries on by itself
            new_run_id = documents[-1]["runId"]
            assert new_run_id != first_run_id
            handle = client.get_workflow_handle(names["my-task-1"])
            assert (await handle.describe()).run_id == new_run_id
