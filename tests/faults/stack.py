"""A stack of separate processes, as a deployment runs it: the Temporal dev server on a database file, the
worker, the gateway; each can be killed and started again on the same port (and the same database)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orchestrator.search_attributes import start_dev_flags
from tests.support import TEST_API_KEY, Services, binary, free_port

HEADERS = {"X-API-KEY": TEST_API_KEY}


@dataclass
class ProcessStack:
    services: Services
    spawn_worker: Callable[..., subprocess.Popen[bytes]]
    db: Path
    task_queue: str
    temporal_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    temporal: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    temporal_args: tuple[str, ...] = ()  # more `temporal server start-dev` flags
    worker_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_temporal(self) -> None:
        args = ["server", "start-dev", "--db-filename", str(self.db), "--port", str(self.temporal_port),
                "--headless", "--log-level", "warn", *start_dev_flags(), *self.temporal_args]  # fmt: skip
        self.temporal = self.services.start(args, {}, self.temporal_port, program=binary("temporal"))

    def stop_temporal(self, how: signal.Signals = signal.SIGTERM) -> None:
        assert self.temporal is not None
        self.temporal.send_signal(how)
        self.temporal.wait(timeout=30)

    def start_gateway(self) -> None:
        env = {
            "ORCHESTRATOR_API_KEY": TEST_API_KEY,
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_TASK_QUEUE": self.task_queue,
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_POLL_INTERVAL": "0.1",
            "GATEWAY_RECONNECT_INTERVAL": "0.5",
        }
        self.gateway = self.services.start(["-m", "api.gateway"], env, self.gateway_port)

    def start(self) -> ProcessStack:
        self.start_temporal()
        self.worker = self.spawn_worker(**{"TEMPORAL_ADDRESS": self.address, **self.worker_env})
        self.start_gateway()
        return self

    # ------------------------------------------------------------------ the HTTP contract (docs/gateway.md)

    def invoke(self, **body: Any) -> str:
        body.setdefault("feedback_window_seconds", 0)
        body.setdefault("task_description", "write an add function")
        r = httpx.post(f"{self.url}/invoke?stream=false", json=body, headers=HEADERS, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["session_id"])

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(f"{self.url}{path}", json=body, headers=HEADERS, timeout=30)
        assert r.status_code in (200, 202), r.text
        return dict(r.json())

    def status(self, session_id: str) -> httpx.Response:
        return httpx.get(f"{self.url}/status/{session_id}", headers=HEADERS, timeout=30)

    def wait_for_status(
        self, session_id: str, wanted: set[str], within: float = 120, revisions: int | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            try:
                r = self.status(session_id)
            except httpx.HTTPError as exc:
                last = exc
            else:
                last = r.text[:300]
                state = r.json() if r.status_code == 200 else {}
                if state.get("task_status") in wanted and revisions in (None, state.get("revisions")):
                    return dict(state)
            time.sleep(0.2)
        raise AssertionError(f"{session_id} never reached {wanted}; last: {last}")


@dataclass
class Event:
    id: int | None
    type: str
    data: str


def sse(url: str, headers: dict[str, str], timeout: float = 60) -> Iterator[Event]:
    """The events of one SSE response, as they arrive; raises httpx errors when the connection breaks."""
    with httpx.stream("GET", url, headers={**HEADERS, **headers}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if fields:
                    yield Event(int(fields["id"]) if "id" in fields else None, fields.get("event", "message"),
                                fields.get("data", ""))  # fmt: skip
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def end_state(events: list[Event]) -> dict[str, Any]:
    ends = [e for e in events if e.type == "end"]
    assert len(ends) == 1, [e.type for e in events]
    return dict(json.loads(ends[0].data))
