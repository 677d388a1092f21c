"""The worker process's own checks."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_worker_refuses_to_start_in_live_mode_without_keys(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LLM_MODE": "live", "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    run = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "LLM_MODE=live but ANTHROPIC_API_KEY, OPENAI_API_KEY not set" in run.stderr
