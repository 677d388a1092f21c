"""The worker process's own checks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from activities.config import WorkerSettings
from tests.support import ROOT


def test_worker_refuses_to_start_in_live_mode_without_keys(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LLM_MODE": "live", "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    run = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "LLM_MODE=live but ANTHROPIC_API_KEY, OPENAI_API_KEY not set" in run.stderr


def test_worker_refuses_to_start_on_a_bad_price_file(tmp_path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{\n  "openai:gpt-4o": {"input": -2.5, "output": 10}\n}\n')
    env = {
        "PATH": "/usr/bin:/bin",
        "LLM_MODE": "offline",
        "MODEL_PRICES_FILE": str(prices),
        "TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    run = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert (
        f"refusing to start: {prices}, line 2 (openai:gpt-4o): input: Input should be greater than or equal to 0"
        in (run.stderr)
    )


def test_workflow_task_slots_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", raising=False)
    assert WorkerSettings(_env_file=None).worker_max_concurrent_workflow_tasks == 10
    monkeypatch.setenv("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "40")
    assert WorkerSettings(_env_file=None).worker_max_concurrent_workflow_tasks == 40
    for bad in ("1", "abc"):
        monkeypatch.setenv("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", bad)
        with pytest.raises(ValidationError, match="worker_max_concurrent_workflow_tasks"):
            WorkerSettings(_env_file=None)


@pytest.mark.parametrize(
    ("value", "message"), [("0", "greater than or equal to 2"), ("abc", "unable to parse string as an integer")]
)
def test_worker_refuses_to_start_on_bad_workflow_task_slots(tmp_path, value: str, message: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLM_MODE": "offline",
        "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": value,
        "TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    run = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "refusing to start: 1 validation error for WorkerSettings" in run.stderr
    assert "worker_max_concurrent_workflow_tasks" in run.stderr and message in run.stderr
    assert "Traceback" not in run.stderr
