"""Fixtures of the workflow tests: a worker with the stub activities (`stubs.py`) under the real names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.workflows.stubs import StubActivities
from workflows.coding_task import CodingTask


@pytest.fixture
def stubs() -> StubActivities:
    return StubActivities()


@pytest.fixture
async def stub_worker(client: Client, task_queue: str, stubs: StubActivities) -> AsyncIterator[Worker]:
    activities: list[Callable[..., Any]] = [stubs.chat, stubs.lint, stubs.search_knowledge, stubs.run_tests]
    async with Worker(client, task_queue=task_queue, workflows=[CodingTask], activities=activities) as worker:
        yield worker
