"""The benchmark harness runs end to end (`--quick`), so it cannot rot. Timings are never asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from launcher.processes import process_info
from tests.stack.launcher import descendants, start_time
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.harness", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    for key in ("lint", "ceiling", "single", "throughput_L0.2", "throughput_L0"):
        assert key in report, key
    assert report["ceiling"]["failed"] == 0
    assert report["throughput_L0.2"]["failed"] == 0
    assert report["throughput_L0"]["failed"] == 0
    assert report["single"]["median_run"]["llm_calls"] == 5
    # lint and search run as local activities: their time is read from their markers, counted as work
    single = report["single"]["median_run"]
    assert (single["lint_calls"], single["rag_calls"]) == (2, 2) and single["tool_s_on_path"] > 0
    assert "single overhead" in proc.stdout


def test_history_size_benchmark_runs_and_the_store_keeps_history_small(tmp_path: Path) -> None:
    """One 48 KB-context task inline and one with the payload store: sizes, not timings, are what it reports."""
    out = tmp_path / "history.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.history_size", "--sizes", "49152", "--steps", "", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [row] = json.loads(out.read_text())
    inline, stored = row["inline"], row["stored"]
    assert inline["status"] == stored["status"] == "awaiting_feedback"
    # The same task, only where its values live differs (how many workflow tasks carried its events varies with
    # timing: the last llm_delta signal of a call can ride with the call's completion or come on its own).
    assert inline["task_events"] == stored["task_events"]
    assert stored["history_bytes"] < 120_000 < inline["history_bytes"]
    assert 49_152 < stored["store_bytes"] < stored["offloaded_bytes"]  # the context at least once, re-sends not whole


async def test_a_signal_stops_the_benchmark_and_everything_it_started() -> None:
    """SIGTERM mid-run (what `timeout` and CI runners send): the dev server, the fake providers and the worker
    process stop with it."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - the harness runs beside the test; only wait_until awaits
        [sys.executable, "-m", "bench.harness", "--quick", "--phases", "ceiling"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def started() -> dict[int, str]:
            found = {pid: process_info(pid) for pid in descendants(proc.pid) - {proc.pid}}
            return {pid: " ".join(info.argv) for pid, info in found.items() if info is not None}

        up = lambda: all(any(what in c for c in started().values()) for what in ("start-dev", "worker_proc"))  # noqa: E731
        await wait_until(up, within=120)
        children = {pid: start_time(pid) for pid in started()}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "stopped by a signal" in err, (proc.returncode, err[-3000:])
    await wait_until(lambda: all(start_time(pid) != began for pid, began in children.items()), within=20)


def test_payload_store_backends_benchmark_runs() -> None:
    """Both backends store, re-send and read back (the benchmark checks the value read back); a re-send of the
    conversation writes a few new objects, not all of them again."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.payload_store_backends", "--functions", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if "first store" in line]
    assert len(rows) == 2 and "sqlite file" in rows[0] and "s3 (moto server)" in rows[1]
    for row in rows:
        objects, new = int(row.split(" objects")[0].rsplit(" ", 1)[1]), int(row.split(" new)")[0].rsplit("(", 1)[1])
        assert 0 < new < objects / 2, row


def test_sandbox_cost_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "sandbox.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sandbox_cost", "--runs", "2", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["runs"] == 2 and figures["run_tests"]["p50_ms"] > 0 and figures["lint"]["p50_ms"] > 0
    assert "run_tests / warm lint (p50)" in proc.stdout
