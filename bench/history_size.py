"""History bytes and events of one task, with payloads inline and with the payload store, by code-context size.

    .venv/bin/python -m bench.history_size                      # contexts 0, 48 KB, 1 MB; one task each way
    .venv/bin/python -m bench.history_size --sizes 0,49152 --steps '' --encrypted

Rows with a number of code-agent calls use a scripted model over a 48 KB context (2, 6, 20 model calls).

One embedded Temporal dev server, the offline model (plan → code → lint → docs), the real worker plugin. Each
task runs until it awaits feedback; its history size and length are then the server's own figures (describe:
what a replay downloads). "store B" is what the task wrote to PAYLOAD_STORE.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.config import WorkerSettings
from activities.llm import LlmActivities
from api.auth import ApiKeyRegistry
from api.memory.main import create_app
from api.memory.settings import MemorySettings
from orchestrator.payload_store import STORE_ENV, THRESHOLD_ENV
from orchestrator.plugin import OrchestratorPlugin, WorkerActivities
from orchestrator.search_attributes import SEARCH_ATTRIBUTES
from orchestrator.temporal import data_converter, exit_now
from testbed.product import TEST_API_KEY, binary
from testbed.server import ThreadedServer
from workflows.coding_task import CodingTask
from workflows.models import (
    LLM_ACTIVITY,
    AgentRole,
    CodingTaskInput,
    LlmRequest,
    LlmResponse,
    TaskStatus,
    ToolCall,
    start_search_attributes,
)

WORKFLOW_TASK_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    }
)
STEPS_CONTEXT = 48 * 1024
REPLAY_REPS = 5


def code_context(size: int) -> str | None:
    """`size` bytes of plausible Python (distinct lines, so nothing compresses it away)."""
    if size == 0:
        return None
    lines, total, i = [], 0, 0
    while total < size:
        line = f"def helper_{i}(value: int) -> int:\n    return value * {i} + {i * 7 % 13}\n\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


class ScriptedSteps(LlmActivities):
    """The offline model, with a code agent that takes `steps` model calls: after the offline first turn (search +
    lint), it looks something up again until its last call, which the offline model answers."""

    def __init__(self, settings: WorkerSettings, steps: int) -> None:
        super().__init__(settings)
        self.steps = steps

    @activity.defn(name=LLM_ACTIVITY)
    async def chat(self, request: LlmRequest) -> LlmResponse:
        turn = sum(m.role == "assistant" for m in request.messages)
        if request.role == AgentRole.CODE_GENERATION and 1 <= turn < self.steps - 1:
            call = ToolCall(id=f"scripted-{turn}", name="search_knowledge", arguments={"query": f"helper {turn}"})
            return LlmResponse(model="offline:scripted", content=f"step {turn}: one more look", tool_calls=[call])
        return await super().chat(request)


def store_bytes(path: Path, task: str) -> int:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM chunks WHERE task = ?", (task,)).fetchone()
    return int(row[0])


def offloaded_bytes(history: History) -> int:
    """What the SDK's references in `history` stand for: the bytes a whole-payload driver would have written."""
    found = 0
    stack: list[Any] = list(history.events)
    while stack:
        message = stack.pop()
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                items: Any = [value]
            elif hasattr(value, "values") and callable(value.values):  # a map of messages
                items = value.values()
            else:
                items = value
            for item in items:
                if isinstance(item, Payload):
                    found += sum(e.size_bytes for e in item.external_payloads)
                elif hasattr(item, "ListFields"):
                    stack.append(item)
    return found


async def replay_seconds(client: Client, task_id: str, reps: int = REPLAY_REPS) -> float:
    """An evicted task's replay: fetch the history and replay it (reading the store); the median of `reps`."""
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    times = []
    for _ in range(reps):
        started = time.monotonic()
        fetched = await client.get_workflow_handle(task_id).fetch_history()
        await replayer.replay_workflow(fetched, raise_on_replay_failure=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


async def one_task(
    env: WorkflowEnvironment, environ: dict[str, str], size: int, store: Path | None, memory_url: str, steps: int = 0
) -> dict[str, Any]:
    saved = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)  # the plugin's and the client's converter read the environment
    try:
        client = await Client.connect(
            env.client.service_client.config.target_host, namespace="default", data_converter=data_converter()
        )
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        settings = WorkerSettings(
            _env_file=None,
            temporal_task_queue=queue,
            llm_mode="offline",
            lint_pool_size=0,
            memory_api_url=memory_url,
            memory_api_key=TEST_API_KEY,
        )
        if steps:
            wired = WorkerActivities(settings)
            scripted = ScriptedSteps(settings, steps)
            functions: list[Any] = [scripted.chat, wired.lint.lint, wired.rag.search_knowledge]
            worker = Worker(client, task_queue=queue, workflows=[CodingTask], activities=functions)
        else:
            worker = Worker(client, task_queue=queue, plugins=[OrchestratorPlugin(settings)])
        async with worker:
            task = CodingTaskInput(
                task_description="write an add function",
                code_context=code_context(size),
                max_agent_steps=max(steps, 6),
            )
            started, cpu_started = time.monotonic(), time.process_time()
            handle = await client.start_workflow(
                CodingTask.run,
                task,
                id=f"bench-{uuid.uuid4().hex[:12]}",
                task_queue=queue,
                search_attributes=start_search_attributes(),
            )
            while True:
                state = await handle.query(CodingTask.status)
                if state.task_status in (TaskStatus.AWAITING_FEEDBACK, TaskStatus.FAILED):
                    break
                await asyncio.sleep(0.2)
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
            replay = await replay_seconds(client, handle.id)
            # Every run of the task (it continues as new when Temporal suggests it: a large history), as stored:
            # no codec, no store; sizes and lengths are the server's own counts.
            run_ids: list[str] = []
            run_id: str | None = handle.first_execution_run_id
            history_bytes = events = 0
            history = History()
            while run_id:
                run_ids.append(run_id)
                raw = env.client.get_workflow_handle(handle.id, run_id=run_id)
                info = (await raw.describe()).raw_description.workflow_execution_info
                history_bytes += info.history_size_bytes
                events += info.history_length
                run_events = (await raw.fetch_history()).events
                history.events.extend(run_events)
                last = run_events[-1].workflow_execution_continued_as_new_event_attributes
                run_id = last.new_execution_run_id or None
            await handle.terminate("benchmark done")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "status": str(state.task_status),
        "errors": state.errors[-2:],
        "history_bytes": history_bytes,
        "events": events,
        # The events of the task's own doing: how many workflow tasks carried them depends on timing (a signal
        # that lands while one is in flight rides along with it), so two runs of the same task compare on these.
        "task_events": sum(1 for e in history.events if e.event_type not in WORKFLOW_TASK_EVENTS),
        "runs": len(run_ids),
        "store_bytes": store_bytes(store, handle.id) if store else 0,
        "offloaded_bytes": offloaded_bytes(history),
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 3),  # this process: client and worker (pylint and the server run elsewhere)
        "replay_seconds": round(replay, 3),
    }


async def run(sizes: list[int], steps: list[int], encrypted: bool, threshold: int | None) -> list[dict[str, Any]]:
    base: dict[str, str] = {}
    if encrypted:
        base["PAYLOAD_ENCRYPTION_KEYS"] = "bench=" + base64.b64encode(os.urandom(32)).decode()
    rows = []
    with tempfile.TemporaryDirectory(prefix="payload-store-") as tmp:
        store = Path(tmp)
        stored_env = {**base, STORE_ENV: str(store / "payloads.sqlite")}
        if threshold is not None:
            stored_env[THRESHOLD_ENV] = str(threshold)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            dev_server_log_level="error",
            search_attributes=SEARCH_ATTRIBUTES,
        )
        memory = create_app(MemorySettings(memory_db_path=store / "memory.db"), ApiKeyRegistry({"bench": TEST_API_KEY}))
        server = ThreadedServer(memory).start()
        try:
            async with env:
                for size in sizes:
                    inline = None
                    if size <= 1_100_000:  # the server refuses a payload over 2 MB: larger ones need the store
                        inline = await one_task(env, {**base, STORE_ENV: ""}, size, None, server.base_url)
                    stored = await one_task(env, stored_env, size, store / "payloads.sqlite", server.base_url)
                    rows.append({"context_bytes": size, "steps": "offline", "inline": inline, "stored": stored})
                for n in steps:  # the scripted code agent over a 48 KB context
                    inline = await one_task(env, {**base, STORE_ENV: ""}, STEPS_CONTEXT, None, server.base_url, n)
                    stored = await one_task(
                        env, stored_env, STEPS_CONTEXT, store / "payloads.sqlite", server.base_url, n
                    )
                    rows.append({"context_bytes": STEPS_CONTEXT, "steps": n, "inline": inline, "stored": stored})
        finally:
            server.stop()
    return rows


def runs(result: dict[str, Any]) -> str:
    return f" ({result['runs']} runs)" if result["runs"] > 1 else ""


def table(rows: list[dict[str, Any]], encrypted: bool) -> str:
    head = (
        "| code_context | code agent calls | history B inline | events | history B stored | events | store B (chunks) "
        "| store B if whole payloads | CPU s inline / stored | replay s inline / stored | status |"
    )
    lines = [
        f"payloads {'encrypted' if encrypted else 'plain JSON'}; offline model; task measured at awaiting_feedback",
        head,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        i, s = row["inline"], row["stored"]
        inline = f"{i['history_bytes']:,} | {i['events']}{runs(i)}" if i else "n/a (over the server's blob limit) | -"
        lines.append(
            f"| {row['context_bytes']:,} | {row['steps']} | {inline} | {s['history_bytes']:,} | "
            f"{s['events']}{runs(s)} | "
            f"{s['store_bytes']:,} | {s['offloaded_bytes']:,} | {i['cpu_seconds'] if i else '-'} / {s['cpu_seconds']} "
            f"| {i['replay_seconds'] if i else '-'} / {s['replay_seconds']} | {s['status']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,49152,1048576", help="code_context sizes in bytes, comma-separated")
    parser.add_argument("--steps", default="2,6,20", help="code-agent model calls of the scripted rows ('' for none)")
    parser.add_argument("--encrypted", action="store_true", help="with PAYLOAD_ENCRYPTION_KEYS set")
    parser.add_argument("--threshold", type=int, help=f"{THRESHOLD_ENV} for the stored run")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    rows = asyncio.run(run(sizes, steps, args.encrypted, args.threshold))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(table(rows, args.encrypted))
    exit_now(0)


if __name__ == "__main__":
    main()
