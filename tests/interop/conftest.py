"""Fixtures of the interop tests: a real llama-server and `python worker.py` as a process, configured only
through the environment variables a user sets (OPENAI_BASE_URL, OPENAI_API_KEY, CODE_MODEL, ...)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.llama_server import TOOLS_TEMPLATE, LlamaServer, LlamaServerError, log_tail, running_llama_server
from tests.interop.support import SpawnWorker
from tests.support import ROOT

WORKER_STOP_TIMEOUT = 30


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    try:
        with running_llama_server(log, chat_template=TOOLS_TEMPLATE) as server:
            yield server
    except LlamaServerError as exc:  # raised only while starting: the message says why and what to do
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[SpawnWorker]:
    """Start `python worker.py` as a real process (no .env: it runs in an empty directory); stopped at teardown."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"worker-{len(procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        procs.append((proc, log_path))
        return proc

    yield spawn
    for proc, log_path in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=WORKER_STOP_TIMEOUT)
                print(f"worker did not stop on SIGTERM; killed. Log:\n{log_tail(log_path)}")
