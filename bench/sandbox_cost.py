"""What one sandboxed test run costs, beside one warm lint: the run_tests and lint activities, interleaved.

    python -m bench.sandbox_cost [--runs 30] [--json FILE]

Each round runs a small passing test file through `run_tests` (bubblewrap, a fresh directory, pytest) and lints
the benchmark's ~150-line module with the warm pylint pool, both as a worker runs them (ActivityEnvironment).
Prints p50 and p95 of each in ms, and the ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.lint import LintActivities
from activities.sandbox import SandboxActivities
from bench.lint_sample import SAMPLE_MODULE
from workflows.models import LintRequest, RunTestsRequest

CODE = "def mul(a, b):\n    return a * b\n"
TESTS = (
    "import pytest\nfrom solution import mul\n\n\n@pytest.mark.parametrize('a, b, product', [(2, 3, 6), (0, 5, 0)])\n"
    "def test_mul(a, b, product):\n    assert mul(a, b) == product\n"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(runs: int) -> dict[str, Any]:
    settings = WorkerSettings(_env_file=None)
    sandbox, lint = SandboxActivities(settings), LintActivities(settings, pool_size=1)
    await lint.start()
    env = ActivityEnvironment()
    times: dict[str, list[float]] = {"run_tests": [], "lint": []}
    try:
        for _ in range(runs + 1):  # the first round warms both up and is not counted
            began = time.perf_counter()
            report = await env.run(sandbox.run_tests, RunTestsRequest(code=CODE, tests=TESTS))
            times["run_tests"].append(time.perf_counter() - began)
            if report.outcome != "passed":
                raise RuntimeError(f"run_tests did not pass in the benchmark: {report.summary()}")
            began = time.perf_counter()
            result = await env.run(lint.lint, LintRequest(code=SAMPLE_MODULE, filename="durations.py"))
            times["lint"].append(time.perf_counter() - began)
            if result.error:
                raise RuntimeError(f"lint failed in the benchmark: {result.error}")
    finally:
        await lint.aclose()
    figures: dict[str, Any] = {"runs": runs}
    for name, values in times.items():
        ms = [v * 1000 for v in values[1:]]
        figures[name] = {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1)}
    figures["run_tests_over_lint_p50"] = round(figures["run_tests"]["p50_ms"] / figures["lint"]["p50_ms"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.runs))
    for name in ("run_tests", "lint"):
        print(f"{name:>9}: p50 {figures[name]['p50_ms']:7.1f} ms   p95 {figures[name]['p95_ms']:7.1f} ms")
    print(f"run_tests / warm lint (p50): {figures['run_tests_over_lint_p50']}x over {figures['runs']} runs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
