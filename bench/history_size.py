"""History bytes and events of one task, with payloads inline and with the payload store, by code-context size.

    .venv/bin/python -m bench.history_size                      # contexts 0, 48 KB, 1 MB; one task each way
    .venv/bin/python -m bench.history_size --sizes 0,49152 --encrypted

One embedded Temporal dev server, the offline model (plan → code → lint → docs), the real worker plugin. Each
task runs until it awaits feedback; its history is then fetched as the server stores it (no codec, no store:
what a replay downloads) and measured. "store B" is what the task wrote to PAYLOAD_STORE_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.payload_store import DIR_ENV, THRESHOLD_ENV
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.search_attributes import SEARCH_ATTRIBUTES
from orchestrator.temporal import data_converter
from tests.support import binary
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskStatus, start_search_attributes


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


def folder_bytes(root: Path, task: str) -> int:
    folder = root / task
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


async def one_task(env: WorkflowEnvironment, environ: dict[str, str], size: int, store: Path | None) -> dict[str, Any]:
    saved = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)  # the plugin's and the client's converter read the environment
    try:
        client = await Client.connect(
            env.client.service_client.config.target_host, namespace="default", data_converter=data_converter()
        )
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        settings = WorkerSettings(_env_file=None, temporal_task_queue=queue, llm_mode="offline", lint_pool_size=0)
        async with Worker(client, task_queue=queue, plugins=[OrchestratorPlugin(settings)]):
            task = CodingTaskInput(task_description="write an add function", code_context=code_context(size))
            started = time.monotonic()
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
            elapsed = time.monotonic() - started
            raw = await env.client.get_workflow_handle(handle.id).fetch_history()  # as stored: no codec, no store
            history_bytes = len(History(events=raw.events).SerializeToString())
            await handle.terminate("benchmark done")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "status": str(state.task_status),
        "history_bytes": history_bytes,
        "events": len(raw.events),
        "store_bytes": folder_bytes(store, handle.id) if store else 0,
        "seconds": round(elapsed, 2),
    }


async def run(sizes: list[int], encrypted: bool, threshold: int | None) -> list[dict[str, Any]]:
    base: dict[str, str] = {}
    if encrypted:
        base["PAYLOAD_ENCRYPTION_KEYS"] = "bench=" + base64.b64encode(os.urandom(32)).decode()
    rows = []
    with tempfile.TemporaryDirectory(prefix="payload-store-") as tmp:
        store = Path(tmp)
        stored_env = {**base, DIR_ENV: str(store)}
        if threshold is not None:
            stored_env[THRESHOLD_ENV] = str(threshold)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            dev_server_log_level="error",
            search_attributes=SEARCH_ATTRIBUTES,
        )
        async with env:
            for size in sizes:
                inline = await one_task(env, {**base, DIR_ENV: ""}, size, None) if size <= 1_100_000 else None
                stored = await one_task(env, stored_env, size, store)
                rows.append({"context_bytes": size, "inline": inline, "stored": stored})
    return rows


def table(rows: list[dict[str, Any]], encrypted: bool) -> str:
    head = "| code_context | history B inline | events | history B stored | events | store B | status |"
    lines = [
        f"payloads {'encrypted' if encrypted else 'plain JSON'}; offline model; task measured at awaiting_feedback",
        head,
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        i, s = row["inline"], row["stored"]
        inline = f"{i['history_bytes']:,} | {i['events']}" if i else "n/a (over the server's blob limit) | -"
        lines.append(
            f"| {row['context_bytes']:,} | {inline} | {s['history_bytes']:,} | {s['events']} | "
            f"{s['store_bytes']:,} | {s['status']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,49152,1048576", help="code_context sizes in bytes, comma-separated")
    parser.add_argument("--encrypted", action="store_true", help="with PAYLOAD_ENCRYPTION_KEYS set")
    parser.add_argument("--threshold", type=int, help=f"{THRESHOLD_ENV} for the stored run")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = asyncio.run(run(sizes, args.encrypted, args.threshold))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(table(rows, args.encrypted))  # noqa: T201 - a benchmark's report


if __name__ == "__main__":
    main()
