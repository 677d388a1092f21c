"""Record the workflow histories that `tests/test_replay.py` replays.

    python -m tests.record_histories

Run it after a deliberate change of the workflow's shape (and guard the change with `workflow.patched`), then
commit the new files next to the old ones: old histories must keep replaying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from orchestrator.temporal import data_converter
from tests.conftest import binary
from tests.fakes.llm_server import FakeLlmServer
from tests.helpers import start_task, wait_for_state, wait_until
from worker import running_worker
from workflows.coding_task import CodingTask
from workflows.models import FeedbackInput, TaskStatus

HISTORIES = Path(__file__).parent / "histories"


async def record(client: Client, name: str, scenario) -> None:
    handle = await scenario()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
    sys.stdout.write(f"recorded {name}: {len(history.events)} events\n")


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    fake = FakeLlmServer().start()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), data_converter=data_converter()
    )
    queue = f"record-{uuid.uuid4().hex[:8]}"
    settings = WorkerSettings(
        _env_file=None,
        temporal_task_queue=queue,
        llm_mode="live",
        openai_api_key="sk-record",
        openai_base_url=f"{fake.base_url}/v1",
        anthropic_api_key="sk-record",
        anthropic_base_url=fake.base_url,
        memory_api_url="http://127.0.0.1:9",
    )
    async with env, running_worker(env.client, settings):
        client = env.client

        async def completed_with_feedback():
            handle = await start_task(client, queue, task_description="write an add function")
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
            await handle.signal("feedback", {"rating": 7})
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=5, comment="good"))
            return handle

        async def revised():
            handle = await start_task(client, queue, task_description="write an add function")
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="validate input"))
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=4))
            return handle

        async def cancelled():
            fake.reset()
            fake.hold_after = 2
            handle = await start_task(client, queue, task_description="write an add function")
            await wait_until(lambda: fake.held >= 1)
            await handle.cancel()
            return handle

        await record(client, "completed_with_feedback", completed_with_feedback)
        await record(client, "revised", revised)
        await record(client, "cancelled", cancelled)
        fake.reset()
    fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
