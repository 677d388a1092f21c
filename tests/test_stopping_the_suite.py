"""A SIGTERM to a test run (a CI timeout, `timeout`, `kill`) stops what its fixtures started, as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.processes import alive
from tests.stack.launcher import descendants
from tests.support import ROOT


def test_a_sigterm_to_pytest_leaves_no_dev_server_or_worker_behind(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    started: set[int] = set()
    probe = "tests/probes/sigterm_probe.py"
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0", probe],
        cwd=ROOT, env={**os.environ, "SIGTERM_PROBE_READY": str(ready)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the probe never started"
        started = descendants(run.pid) - {run.pid}
        worker = int(ready.read_text())
        assert worker in started and len(started) >= 2, started  # the dev server and the worker at least
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode()
        assert run.returncode == pytest.ExitCode.INTERRUPTED, output
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in started if alive(pid)]
        assert not left, f"still running after pytest stopped: {left}\n{output}"
    finally:
        for pid in started | descendants(run.pid):  # whatever a failed run left, by pid
            if pid != run.pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.kill()
        run.wait()
