"""The gateway tests' fixture: the app over ASGI, on the test's task queue, with the tenants alice and bob."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from tests.gateway.support import asgi_client, make_app


@pytest.fixture
async def http(client: Client, task_queue: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(make_app(task_queue, client)) as http:
        yield http
