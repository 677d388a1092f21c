"""Record the workflow histories that `tests/workflows/test_replay.py` replays.

    python -m tests.workflows.record_histories [SCENARIO ...] [--suffix _before_lint_gate]

Before a change of the workflow's shape, record with a `--suffix` naming the change and commit the files: after
the change (guarded with `workflow.patched`, see docs/operations.md), they must keep replaying.
The server has the search attributes registered, as `make run`'s has, and tasks start as the gateway starts
them, so the histories hold the upserts production makes.

`stored_context` records with the payload store on (`orchestrator.payload_store`): its history holds references,
and the values they name go to `histories/stored_context.sqlite`, which the replay test reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from orchestrator import payload_store
from testbed.llm_server import NEEDS_ONE_FIX, PRODUCT_TESTS, WRONG_PRODUCT_FIRST, FakeLlmServer
from testbed.product import fake_provider_settings
from tests.support import dev_server, product_worker, start_task, wait_for_state, wait_until
from workflows.coding_task import CodingTask
from workflows.models import STREAM_TOPICS, BudgetRaise, FeedbackInput, TaskEvent, TaskStatus

HISTORIES = Path(__file__).parent / "histories"


SCENARIOS = (
    "completed_with_feedback",
    "revised",
    "cancelled",
    "started_bare",
    "gate_round",
    "budget_raised",
    "stored_context",
    "early_feedback",
    "test_gate_round",
    "watched",
)
STORED = "stored_context"  # recorded with the payload store on; its values in histories/<name>.sqlite
STORED_THRESHOLD = 1024  # small, so that a small context and the conversation are stored


def stored_context_text() -> str:
    """About 6 KB of Python for the `stored_context` task: a code context the agents' calls re-send."""
    return "".join(f"def helper_{i}(value: int) -> int:\n    return value * {i}\n\n\n" for i in range(120))


async def record(client: Client, name: str, scenario) -> None:
    handle = await scenario()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
    sys.stdout.write(f"recorded {name}: {len(history.events)} events\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument("--suffix", default="", help="appended to each file name, e.g. _before_lint_gate")
    args = parser.parse_args()
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING)
    if STORED in args.scenarios:
        if len(args.scenarios) != 1:
            parser.error(f"record {STORED} on its own: its converter stores values, the others' must not")
        store = HISTORIES / f"{STORED}{args.suffix}.sqlite"
        store.unlink(missing_ok=True)
        os.environ[payload_store.STORE_ENV] = str(store)
        os.environ[payload_store.THRESHOLD_ENV] = str(STORED_THRESHOLD)
    fake = FakeLlmServer().start()
    env = await dev_server(log_level="warn")
    queue = f"record-{uuid.uuid4().hex[:8]}"
    settings = fake_provider_settings(fake.base_url, temporal_task_queue=queue, memory_api_url="http://127.0.0.1:9")
    async with env, product_worker(env.client, settings):
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

        async def started_bare():  # the CLI without --search-attribute: no search attributes
            handle = await start_task(client, queue, search_attributes=False, task_description="write an add function")
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
            return handle

        async def gate_round():  # the first code fails pylint and is fixed once shown the messages
            description = f"write an add function {NEEDS_ONE_FIX}"
            handle = await start_task(client, queue, task_description=description, feedback_window_seconds=0)
            return handle

        async def test_gate_round():  # wrong but lint-clean code, caught by the tests in the sandbox, fixed once
            description = f"write a product function {WRONG_PRODUCT_FIRST}"
            return await start_task(
                client, queue, task_description=description, tests=PRODUCT_TESTS, feedback_window_seconds=0
            )

        async def budget_raised():  # waits in awaiting_budget before the code agent, then the update lets it go on
            handle = await start_task(client, queue, task_description="write an add function", budget_tokens=4_400)
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_BUDGET)
            await handle.execute_update(CodingTask.raise_budget, BudgetRaise(budget_tokens=1_000_000))
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
            return handle

        async def stored_context():  # a code context and a conversation in the payload store
            handle = await start_task(
                client, queue, task_description="write an add function", code_context=stored_context_text()
            )
            await wait_for_state(handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=4))
            return handle

        async def cancelled():
            fake.hold_after = 2
            handle = await start_task(client, queue, task_description="write an add function")
            await wait_until(lambda: fake.held >= 1)
            await handle.cancel()
            return handle

        async def early_feedback():  # a rating sent while the code agent runs, then one once the task awaits it
            fake.hold_after = 1
            handle = await start_task(client, queue, task_description="write an add function")
            await wait_until(lambda: fake.held >= 1)
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="validate input"))
            fake.hold_after = None
            fake.release()  # the held call is answered 503 and retried
            # before feedback-when-awaited the early rating is applied once the task awaits feedback (a revision)
            await wait_for_state(
                handle, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and (s.revisions == 1 or not s.feedback)
            )
            await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
            return handle

        async def watched():  # read through the stream from start to end: its polls, the watch lease, llm_delta
            fake.piece_chars, fake.chunk_delay = 8, 0.02
            handle = await start_task(
                client, queue, task_description="write an add function", feedback_window_seconds=0
            )
            async for _ in WorkflowStreamClient.create(client, handle.id).subscribe(
                STREAM_TOPICS, result_type=TaskEvent
            ):
                pass
            return handle

        scenarios = {
            "completed_with_feedback": completed_with_feedback,
            "revised": revised,
            "cancelled": cancelled,
            "started_bare": started_bare,
            "gate_round": gate_round,
            "budget_raised": budget_raised,
            "stored_context": stored_context,
            "early_feedback": early_feedback,
            "test_gate_round": test_gate_round,
            "watched": watched,
        }
        for name in args.scenarios or [s for s in SCENARIOS if s != STORED]:
            fake.reset()
            await record(client, name + args.suffix, scenarios[name])
        fake.reset()
    fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
