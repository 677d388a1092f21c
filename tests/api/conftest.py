"""Fixtures of the HTTP services' tests: each app served by its own command, as a process, on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Serve, Services


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`serve(args, env, port)` runs `python <args>` until the port answers and returns its base URL; every
    process started is stopped (SIGTERM, then SIGKILL to its process group) when the test ends."""
    services = Services(tmp_path)

    def start(args: list[str], env: dict[str, str], port: int) -> str:
        services.start(args, env, port)
        return f"http://127.0.0.1:{port}"

    yield start
    services.stop_all()
