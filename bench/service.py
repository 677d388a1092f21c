"""A service of the project started by a benchmark in its own process, as deployed: ready when its `/health`
answers 200, stopped (SIGTERM, then SIGKILL after 15 s) however the benchmark ends."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx


@contextlib.contextmanager
def service(
    command: list[str],
    env: dict[str, str],
    health_url: str,
    what: str,
    cwd: str | Path | None = None,
    output: IO[str] | None = None,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen[str]]:
    """``command`` running until the block ends. ``output`` takes its stdout and stderr; without it, stdout is
    dropped and stderr is ours."""
    stdout = subprocess.DEVNULL if output is None else output
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=stdout, stderr=output, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with code {proc.returncode} before it answered {health_url}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer {health_url} within {timeout:.0f} s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
