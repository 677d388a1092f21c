"""Fixtures of the HTTP services' tests: each app served by its own command, as a process, on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.stack import port_open
from tests.support import ROOT, Serve


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`serve(args, env, port)` runs `python <args>` until the port answers and returns its base URL; every
    process started is stopped (SIGTERM, then SIGKILL to its process group) when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], port: int) -> str:
        log = tmp_path / f"{args[1]}-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        deadline = time.monotonic() + 60
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{' '.join(args)} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
