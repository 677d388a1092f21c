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
