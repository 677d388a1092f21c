"""Long-lived tasks at scale: N tasks waiting for feedback on one worker whose workflow cache holds fewer than N.

    python -m bench.feedback_scale [--tasks 2000] [--cache 500] [--quick] [--json PATH]

The harness' environment (bench.harness): a dev server with the product's search attributes, the fake providers
(bench.servers, answering at once) and one worker process (bench.worker_proc) with `max_cached_workflows=--cache`
and its SDK metrics served (WORKER_METRICS_PORT). It then

1. starts N CodingTasks, each with a 24 h feedback window, keeping at most `--in-flight` of them between their
   start and `awaiting_feedback` (long-lived tasks pile up over time; they are not all planned and coded at
   once), until visibility counts N with TaskStatus `awaiting_feedback`: the wall time, and the worker's RSS then;
2. sends each the `feedback` signal (rating 5, `--signals` in flight at once) and waits until all N completed:
   feedback → completed p50/p95 (the
   signal's return to the run's close time on the server), and throughput (N / first signal → last close);
3. reports the worker's workflow cache counters (SDK metrics) for both phases: forced evictions, misses (a
   workflow task for a workflow not in the cache: its history is fetched and replayed), hits, and the cache size.

With N above the cache, at least N - cache runs were evicted by the time all wait, and each of those replays its
history when its feedback arrives (and evicts another). Timings are printed, never asserted. `--quick`: N=24 with
a cache of 8 (8 in flight), about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from typing import Any

import httpx
from temporalio.client import WorkflowHandle

from bench.harness import Bench, _pct, environment, machine, run_and_report, stop_on_signals
from launcher.processes import rss_kb
from testbed.server import free_port
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, FeedbackInput, TaskStatus

TASK = CodingTaskInput(
    task_description="Write a function add(first, second) that returns the sum of two integers, with docs.",
    feedback_window_seconds=24 * 3600,  # they wait for the feedback the benchmark sends
)
CACHE_METRICS = ("sticky_cache_total_forced_eviction", "sticky_cache_miss", "sticky_cache_hit", "sticky_cache_size")


async def cache_metrics(http: httpx.AsyncClient, url: str, task_queue: str) -> dict[str, float]:
    """The worker's workflow-cache counters for the product's task queue (summed over their other labels)."""
    text = (await http.get(url)).text
    found = dict.fromkeys(CACHE_METRICS, 0.0)
    for line in text.splitlines():
        match = re.match(r"^temporal_(\w+?)(?:_total)?\{([^}]*)\} ([0-9.e+-]+)$", line)
        if match and match.group(1) in found and f'task_queue="{task_queue}"' in match.group(2):
            found[match.group(1)] += float(match.group(3))
    return found


async def count(bench: Bench, condition: str) -> int:
    query = f'WorkflowType="CodingTask" AND TaskQueue="{bench.task_queue}" AND {condition}'
    return (await bench.client.count_workflows(query)).count


async def wait_for_count(bench: Bench, condition: str, n: int, within: float) -> float:
    """Seconds until visibility counts `n` of the run's tasks matching `condition`."""
    began = time.perf_counter()
    while (found := await count(bench, condition)) < n:
        if time.perf_counter() - began > within:
            raise SystemExit(f"only {found} of {n} tasks reached {condition} within {within:.0f} s")
        await asyncio.sleep(1.0)
    return time.perf_counter() - began


async def run(
    n: int, cache: int, in_flight: int, starts: int, phase_limit: float, worker_options: dict[str, Any]
) -> dict[str, Any]:
    stop_on_signals()
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    options = json.dumps({**worker_options, "max_cached_workflows": cache})
    extra = {"WORKER_METRICS_PORT": str(port), "WORKER_METRICS_HOST": "127.0.0.1"}
    async with environment(options, [], extra) as bench, httpx.AsyncClient(timeout=30) as http:
        await bench.set_latency(0.0)
        warm = [await bench.start_task(f"warm-{i}") for i in range(2)]  # imports, pools, connections
        await asyncio.gather(*(h.result() for h in warm))
        rss_idle_kb = rss_kb(bench.procs.worker)
        before = await cache_metrics(http, metrics_url, bench.task_queue)

        limit = asyncio.Semaphore(starts)
        waiting = f'TaskStatus="{TaskStatus.AWAITING_FEEDBACK.value}"'
        handles: list[WorkflowHandle[Any, Any]] = []
        began = time.perf_counter()
        while len(handles) < n:  # keep at most `in_flight` tasks between their start and awaiting_feedback
            if time.perf_counter() - began > phase_limit:
                raise SystemExit(f"only {len(handles)} of {n} tasks started within {phase_limit:.0f} s")
            room = min(n - len(handles), in_flight - (len(handles) - await count(bench, waiting)))
            handles += await asyncio.gather(*(bench.start_task(f"wait-{len(handles) + i}", TASK) for i in range(room)))
            await asyncio.sleep(0.5)
        started_s = time.perf_counter() - began
        await wait_for_count(bench, waiting, n, phase_limit)
        all_waiting_s = time.perf_counter() - began
        await asyncio.sleep(2.0)  # the last workflow tasks finish; the cache settles
        rss_waiting_kb = rss_kb(bench.procs.worker)
        at_wait = await cache_metrics(http, metrics_url, bench.task_queue)

        signaled_at: dict[str, float] = {}

        async def feedback(handle: WorkflowHandle[Any, Any]) -> None:
            async with limit:
                await handle.signal(CodingTask.feedback, FeedbackInput(rating=5))
                signaled_at[handle.id] = time.time()

        first_signal = time.time()
        await asyncio.gather(*(feedback(h) for h in handles))
        signals_s = time.time() - first_signal
        await wait_for_count(bench, 'ExecutionStatus="Completed"', n + len(warm), phase_limit)
        rss_after_kb = rss_kb(bench.procs.worker)
        after = await cache_metrics(http, metrics_url, bench.task_queue)
        latencies = []
        last_close = first_signal
        async for execution in bench.client.list_workflows(
            f'WorkflowType="CodingTask" AND TaskQueue="{bench.task_queue}" AND ExecutionStatus="Completed"'
        ):
            if execution.id in signaled_at and execution.close_time is not None:
                closed = execution.close_time.timestamp()
                latencies.append(closed - signaled_at[execution.id])
                last_close = max(last_close, closed)
        results = await asyncio.gather(*(h.result() for h in handles[:20]))  # a sample: they completed as asked
        sample_ok = sum(1 for r in results if r.task_status == TaskStatus.COMPLETED and r.feedback[-1].rating == 5)

    def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: b[k] - a[k] for k in CACHE_METRICS if k != "sticky_cache_size"} | {
            "sticky_cache_size": b["sticky_cache_size"]
        }

    return {
        "machine": machine(),
        "tasks": n,
        "max_cached_workflows": cache,
        "worker_options": worker_options,
        "in_flight": in_flight,
        "signal_concurrency": starts,
        "starts_s": started_s,
        "all_waiting_s": all_waiting_s,
        "worker_rss_idle_mb": rss_idle_kb / 1024,
        "worker_rss_all_waiting_mb": rss_waiting_kb / 1024,
        "worker_rss_after_mb": rss_after_kb / 1024,
        "signals_s": signals_s,
        "completed": len(latencies),
        "feedback_to_completed_p50_s": statistics.median(latencies) if latencies else float("nan"),
        "feedback_to_completed_p95_s": _pct(latencies, 0.95) if latencies else float("nan"),
        "feedback_to_completed_max_s": max(latencies) if latencies else float("nan"),
        "feedback_throughput_per_s": len(latencies) / max(last_close - first_signal, 1e-9),
        "sample_checked": len(results),
        "sample_ok": sample_ok,
        "cache_until_all_waiting": delta(before, at_wait),
        "cache_feedback_phase": delta(at_wait, after),
        "evictions_implied_min": max(0, n - cache),
    }


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    wait, fb = r["cache_until_all_waiting"], r["cache_feedback_phase"]

    def cache(row: dict[str, float]) -> str:
        return (
            f"{row['sticky_cache_total_forced_eviction']:.0f} evictions, {row['sticky_cache_miss']:.0f} misses, "
            f"{row['sticky_cache_hit']:.0f} hits, {row['sticky_cache_size']:.0f} cached at the end"
        )

    rows = [
        ("machine", f"{m['nproc']} cores, {m['cpu_model']}", f"python {m['python']}, git {m['git']}"),
        ("tasks / worker cache", f"{r['tasks']} / {r['max_cached_workflows']}", "max_cached_workflows of one worker"),
        (
            "all awaiting_feedback",
            f"{r['all_waiting_s']:.1f} s",
            f"at most {r['in_flight']} tasks running at once; the last started at {r['starts_s']:.1f} s",
        ),
        (
            "worker RSS, all waiting",
            f"{r['worker_rss_all_waiting_mb']:.0f} MB",
            f"idle {r['worker_rss_idle_mb']:.0f} MB, after all completed {r['worker_rss_after_mb']:.0f} MB",
        ),
        ("cache, start → all waiting", "", cache(wait)),
        (
            "feedback → completed",
            f"p50 {r['feedback_to_completed_p50_s']:.2f} s",
            f"p95 {r['feedback_to_completed_p95_s']:.2f} s, max {r['feedback_to_completed_max_s']:.2f} s, "
            f"{r['completed']} completed, signals sent in {r['signals_s']:.1f} s",
        ),
        ("feedback throughput", f"{r['feedback_throughput_per_s']:.1f} tasks/s", "first signal → last close"),
        ("cache, feedback phase", "", cache(fb)),
        ("evictions implied", f">= {r['evictions_implied_min']}", "N - cache by the time all wait"),
        ("sample checked", f"{r['sample_ok']}/{r['sample_checked']}", "completed with the rating sent"),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{width[0]}}  {b:>{width[1]}}  {c}" for a, b, c in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks left waiting for feedback")
    parser.add_argument("--cache", type=int, default=500, help="the worker's max_cached_workflows")
    parser.add_argument(
        "--in-flight", type=int, help="most tasks running (started, not yet waiting) at once; default min(100, cache/2)"
    )
    parser.add_argument("--signals", type=int, default=100, help="feedback signals in flight at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each phase may take")
    parser.add_argument("--quick", action="store_true", help="N=24, cache 8, 8 in flight (CI)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument(
        "--worker-options",
        default="{}",
        help="JSON of extra Worker keyword arguments, e.g. '{\"max_concurrent_workflow_tasks\": 10}'",
    )
    args = parser.parse_args()
    n, cache = (24, 8) if args.quick else (args.tasks, args.cache)
    in_flight = args.in_flight or (cache if args.quick else min(100, max(1, cache // 2)))
    options = json.loads(args.worker_options)
    run_and_report(run(n, cache, in_flight, args.signals, args.timeout, options), table, args.json)


if __name__ == "__main__":
    main()
