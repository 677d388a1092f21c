"""What the tests share besides fixtures: paths, the tenants' keys, the secret scan, waiting helpers, services run
as processes (and, from `testbed`, the binaries, a dev server, the worker, a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from launcher.stack import port_open

# The tests take these from here as from testbed (the benchmarks take them from testbed).
from testbed.product import PROVIDER_KEYS, TEST_API_KEY, binary, dev_server, product_worker, start_task  # noqa: F401
from testbed.server import free_port  # noqa: F401
from workflows.coding_task import CodingTask
from workflows.models import TaskState

ROOT = Path(__file__).resolve().parent.parent
ALICE_KEY = "alice-key-0123456789abcdefXYZ"  # the gateway tests' two tenants
BOB_KEY = "bob-key-abcdef0123456789QRSTU"
MEMORY_SERVICE_KEY = "memory-service-key-0123456789abcdef"  # MEMORY_API_KEY: the worker's key to the memory API
Serve = Callable[[list[str], dict[str, str], int], str]  # tests/api's `serve` fixture: (args, env, port) -> URL
# Every provider and tenant key the suite hands to a worker, a gateway or a memory API: none may reach a history.
SECRETS = (*PROVIDER_KEYS, TEST_API_KEY, ALICE_KEY, BOB_KEY, MEMORY_SERVICE_KEY)


async def secrets_in_histories(client: Client, secrets: Sequence[str] = SECRETS) -> tuple[int, list[str]]:
    """How many histories the namespace holds, and `<secret> in <workflow id>` for each one holding a secret.

    Histories are read as the server stores them: with no payload codec, so a plain run is searched as plain
    JSON (where a leaked key would show) and an encrypted one as ciphertext; memos and search attributes too.
    """
    assert client.data_converter.payload_codec is None
    runs = [(e.id, e.run_id) async for e in client.list_workflows()]
    limit = asyncio.Semaphore(16)

    async def found_in(workflow_id: str, run_id: str) -> list[str]:
        async with limit:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        raw = History(events=history.events).SerializeToString()
        return [f"{secret!r} in {workflow_id} ({run_id})" for secret in secrets if secret.encode() in raw]

    found = await asyncio.gather(*(found_in(*run) for run in runs))
    return len(runs), [line for lines in found for line in lines]


class SecretScan:
    """Collects, from every Temporal server the session starts, the histories that hold a provider or tenant key."""

    done: SecretScan | None = None  # the session's, once it ended (for the summary line)

    def __init__(self) -> None:
        self.servers = 0
        self.histories = 0
        self.found: list[str] = []

    async def scan(self, client: Client) -> None:
        """Call it when a server's histories are complete: just before the server stops."""
        count, found = await secrets_in_histories(client)
        self.servers += 1
        self.histories += count
        self.found += found


async def wait_for_state(
    handle: WorkflowHandle[CodingTask, TaskState],
    predicate: Callable[[TaskState], bool],
    within: float = 60.0,
) -> TaskState:
    """Poll the `status` query until `predicate` holds."""
    deadline = time.monotonic() + within
    while True:
        state = await handle.query(CodingTask.status)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"state never matched; last: {state.task_status} {state.errors} {state.logs[-5:]}")
        await asyncio.sleep(0.1)


async def wait_until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


class Services:
    """The product's HTTP services run by their own commands, as processes (each its own session): `start`
    returns once the port answers; `kill` is a crash (SIGKILL of its group); `stop_all` ends every one."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self._log_of: dict[int, Path] = {}

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self._log_of[proc.pid].read_text(errors="replace")

    def start(
        self, args: list[str], env: dict[str, str], port: int, within: float = 60, program: str = sys.executable
    ) -> subprocess.Popen[bytes]:
        """`program args` (by default `python args`) with `env` added to ours, once `port` answers."""
        log = self.logs / f"{args[1]}-{port}-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [program, *args], cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.started.append(proc)
        self._log_of[proc.pid] = log
        deadline = time.monotonic() + within
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{' '.join(args)} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.started:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            self.kill(proc)


def local_activity_types(history: WorkflowHistory) -> list[str]:
    """The activity type of each local activity a history records (its `core_local_activity` markers), in order."""
    return [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)["activity_type"]
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
