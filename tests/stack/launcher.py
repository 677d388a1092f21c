"""Run `make run`'s launcher (or `make run` itself) on free ports, and make sure nothing of it outlives a test.

`RunningStack` records every process of the stack it sees (the launcher's whole tree, each with its start time,
so a reused pid is never mistaken for one of ours) and `kill_everything()` stops them by pid and process group,
whether the launcher answers or not: a fixture calls it in its teardown, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from launcher.processes import all_processes, process_info, start_time
from launcher.stack import port_open
from tests.support import MEMORY_SERVICE_KEY, ROOT, TEST_API_KEY, free_port

PORT_VARIABLES = (
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "NATS_PORT",
    "MEMORY_API_PORT",
    "GATEWAY_PORT",
    "WORKER_METRICS_PORT",
)
UP = "everything is up"


def stack_env(tmp_path: Path) -> dict[str, str]:
    """The launcher's environment: free ports, files under `tmp_path`, no provider key (the offline model), no
    NATS_URL (the stack starts its own nats-server)."""
    ports = {name: free_port() for name in PORT_VARIABLES}
    return {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "NATS_URL"},
        **{name: str(port) for name, port in ports.items()},
        "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['TEMPORAL_PORT']}",
        "TEMPORAL_DB_PATH": str(tmp_path / "temporal.db"),
        "MEMORY_DB_PATH": str(tmp_path / "memory.db"),
        "PAYLOAD_STORE": str(tmp_path / "payloads.sqlite"),
        "MEMORY_API_URL": f"http://127.0.0.1:{ports['MEMORY_API_PORT']}",
        "ORCHESTRATOR_API_KEY": TEST_API_KEY,
        "MEMORY_API_KEY": MEMORY_SERVICE_KEY,
        "LLM_MODE": "auto",
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
    }


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for info in all_processes():
        children.setdefault(info.ppid, []).append(info.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    seen: dict[int, int | None] = field(default_factory=dict)  # pid -> start time

    @classmethod
    def start(
        cls,
        tmp_path: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        stdout: int | IO[Any] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        **popen: Any,
    ) -> RunningStack:
        env = env or stack_env(tmp_path)
        log = tmp_path / f"stack-{time.monotonic_ns()}.log"
        out = log.open("wb") if stdout is None else stdout
        proc = subprocess.Popen(
            command or [sys.executable, "-m", "launcher.stack"],
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            **popen,
        )
        if stdout is None:
            out.close()  # type: ignore[union-attr]
        stack = cls(proc, env, log)
        stack.record()
        return stack

    @property
    def ports(self) -> list[int]:
        return [int(self.env[name]) for name in PORT_VARIABLES]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_until_up(self, timeout: float = 150.0, output: Callable[[], str] | None = None) -> None:
        read = output or self.output
        deadline = time.monotonic() + timeout
        while UP not in read():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the stack did not come up (exit code {self.proc.poll()}):\n{read()[-3000:]}")
            time.sleep(0.3)
        self.record()

    def record(self) -> None:
        """Remember every process of the stack alive now (call it again later: children start children)."""
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                self.seen.setdefault(pid, start_time(pid))

    def alive(self) -> list[str]:
        """The recorded processes still running (zombies hold nothing and do not count)."""
        return [
            f"{pid} {info.command}"
            for pid, started in self.seen.items()
            if pid != self.proc.pid and start_time(pid) == started and (info := process_info(pid)) is not None
        ]

    def held_ports(self) -> list[int]:
        return [port for port in self.ports if port_open(port)]

    def assert_all_gone(self, within: float = 10.0) -> None:
        """Every process of the stack gone and every port free, within `within` seconds of now."""
        deadline = time.monotonic() + within
        while self.alive() or self.held_ports() or self.proc.poll() is None:
            if time.monotonic() > deadline:
                launcher = "running" if self.proc.poll() is None else "exited"
                pytest.fail(
                    f"after {within:.0f}s: launcher {launcher}, left running: {self.alive()}, "
                    f"ports still held: {self.held_ports()}\n{self.output()[-2000:]}"
                )
            time.sleep(0.1)

    def kill_everything(self, grace: float = 30.0) -> None:
        """Stop the stack whatever state it is in: ask the launcher (SIGTERM) for `grace` seconds, then SIGKILL
        every recorded process and every process group they lead."""
        self.record()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        for pid, started in self.seen.items():
            if start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if pid != os.getpgid(0):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # the group it led, if any member is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
