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


# TEMP until the shared fixture lands
import socket as _socket
import subprocess as _sp
import time as _time
from collections.abc import Iterator as _It
from pathlib import Path as _P
import sys as _sys


@pytest.fixture(scope="session")
def nats_url() -> _It[str]:
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _sp.Popen([str(_P(_sys.executable).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port)])
    for _ in range(100):
        with _socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        _time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait()
