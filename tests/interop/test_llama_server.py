"""The product against a real OpenAI-compatible server it did not write: llama.cpp's llama-server with SmolLM2-135M.

A task goes through the real worker process, configured as a user would (OPENAI_BASE_URL, OPENAI_API_KEY,
*_MODEL), on a real Temporal dev server. A 135M-parameter model writes poor code, calls tools oddly or not at all,
and answers with no code block: the test is of the product, so it checks that whatever came back was handled as
the workflow promises (see promises.py), and prints what the model answered. `make test-interop` runs it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.llm import LlmActivities
from launcher.processes import alive
from testbed.llama_server import API_KEY, LlamaServer, LlamaServerError, ensure_port_free, running_llama_server
from testbed.server import free_port
from tests.interop.promises import Exchange, check_agent, describe, llm_exchanges
from tests.interop.support import MODEL, PRICES, SpawnWorker, worker_environment
from tests.support import ROOT, start_task
from workflows import prompts
from workflows.coding_task import CodingTask
from workflows.models import AgentRole, ChatMessage, LlmRequest, LlmResponse, TaskState, TaskStatus, ToolCall, ToolName

pytestmark = pytest.mark.interop

TASK_TIMEOUT = 900  # seconds; CPU inference on a shared 2-core machine
TASKS = {
    "code": "Write a Python function `add(a, b)` that returns the sum of a and b.",
    "prose": "In one sentence, explain what a Python list is. Do not write any code.",
}


async def run_task(
    client: Client, task_queue: str, description: str, **fields: Any
) -> tuple[TaskState, list[Exchange], WorkflowHandle[CodingTask, TaskState]]:
    """The task run to its end (`fields`: more of its input), what it ended as and its model calls, printed."""
    handle = await start_task(  # one quality-gate round at most: each call is seconds of CPU inference here
        client, task_queue, task_description=description, max_agent_steps=3, max_fix_rounds=1,
        feedback_window_seconds=0, **fields
    )  # fmt: skip
    try:
        state = await handle.result()
    except WorkflowFailureError:
        state = await handle.query(CodingTask.status)
    exchanges = await llm_exchanges(client, handle)
    for exchange in exchanges:
        print(describe(exchange))
    code = state.results.code_generation
    if code is not None and code.lint is not None:
        print(f"code ({len(code.code.splitlines())} lines) linted: {code.lint.summary(limit=1)}")
    print(f"task {state.task_status}; warnings: {state.warnings}; errors: {state.errors}")
    return state, exchanges, handle


@pytest.mark.timeout(TASK_TIMEOUT)
@pytest.mark.parametrize("kind", sorted(TASKS))
async def test_a_task_runs_through_the_openai_provider(
    kind: str, client: Client, task_queue: str, llama: LlamaServer, memory_api_url: str, spawn_worker: SpawnWorker
) -> None:
    spawn_worker(worker_environment(client, task_queue, llama, memory_api_url))
    state, exchanges, _ = await run_task(client, task_queue, TASKS[kind])

    assert exchanges and exchanges[0].request.role == AgentRole.PLANNER
    by_role: dict[AgentRole, list[Exchange]] = defaultdict(list)
    for exchange in exchanges:
        by_role[exchange.request.role].append(exchange)
    for role, calls in by_role.items():
        check_agent(role, calls, state)
    answered = [e for e in exchanges if e.response is not None]
    usage = state.usage[MODEL]
    assert usage.calls == len(answered) and usage.input_tokens > 0  # the server's usage block was read
    assert usage.cost_usd == 0.0 and state.cost_usd == 0.0  # priced by the operator's MODEL_PRICES_FILE
    if state.task_status == TaskStatus.COMPLETED:
        assert set(by_role) == set(AgentRole) and not state.errors
        # chat completions with tools (the agents' first steps) and without (the planner, the agents' last step)
        assert any(e.request.tools for e in exchanges) and any(not e.request.tools for e in exchanges)
    else:
        assert state.task_status == TaskStatus.FAILED and state.errors, state


async def test_a_wrong_api_key_fails_the_task_at_once_and_says_so(
    client: Client, task_queue: str, llama: LlamaServer, memory_api_url: str, spawn_worker: SpawnWorker
) -> None:
    """llama-server answers 401 like a provider: non-retryable, the task fails naming the variable to check."""
    spawn_worker(worker_environment(client, task_queue, llama, memory_api_url, api_key="sk-wrong"))
    state, exchanges, _ = await run_task(client, task_queue, TASKS["code"])
    assert state.task_status == TaskStatus.FAILED
    assert len(exchanges) == 1 and exchanges[0].attempts == 1  # not retried
    assert "openai returned HTTP 401" in state.errors[-1] and "check OPENAI_API_KEY" in state.errors[-1]


# --------------------------------------------------------------------------- the server process on every path


def test_a_port_in_use_is_reported_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(LlamaServerError, match=rf"port {port} on 127\.0\.0\.1 is in use .*INTEROP_LLAMA_PORT"),
            running_llama_server(tmp_path / "llama.log", port=port),
        ):
            pass
    assert not (tmp_path / "llama.log").exists()  # refused before anything was started


def test_a_server_that_dies_while_starting_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with (
        pytest.raises(LlamaServerError, match="llama-server exited with code") as failed,
        running_llama_server(tmp_path / "llama.log", port=free_port(), model=broken),
    ):
        pass
    assert "gguf" in str(failed.value).lower()  # the server's own words, from its log


def test_the_server_stops_when_the_block_fails(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(RuntimeError, match="a failing test"):  # noqa: SIM117 - the block must fail inside the server's
        with running_llama_server(tmp_path / "llama.log", port=port) as server:
            process = server.process
            raise RuntimeError("a failing test")
    assert process.poll() is not None
    ensure_port_free(port)


def test_the_server_does_not_outlive_a_killed_test_process(tmp_path: Path) -> None:
    """SIGKILL leaves no teardown: the server still goes, by the parent-death signal it was started with."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from testbed.llama_server import running_llama_server\n"
        f"with running_llama_server(Path({str(tmp_path / 'llama.log')!r}), port={free_port()}) as server:\n"
        "    print(server.process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    test_process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert test_process.stdout is not None
        server_pid = int(test_process.stdout.readline())
        assert alive(server_pid)
    finally:
        test_process.kill()
        test_process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(server_pid)


# --------------------------------------------------------------------------- the provider code, one call at a time


def provider_settings(llama: LlamaServer) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        llm_mode="live",
        code_model=MODEL,
        openai_api_key=API_KEY,
        openai_base_url=f"{llama.base_url}/v1",
        llm_request_timeout_seconds=170,
        model_prices_file=str(PRICES),
    )


async def chat(llama: LlamaServer, request: LlmRequest) -> LlmResponse:
    activities = LlmActivities(provider_settings(llama))
    try:
        return await ActivityEnvironment().run(activities.chat, request)
    finally:
        await activities.aclose()


def code_request(tools: list[ToolName], max_tokens: int = 4096) -> LlmRequest:
    prompt = prompts.code_prompt(TASKS["code"], None, None)
    return LlmRequest(
        role=AgentRole.CODE_GENERATION,
        system=prompts.CODE_SYSTEM,
        messages=[ChatMessage(role="user", content=prompt)],
        tools=tools,
        max_tokens=max_tokens,
    )


@pytest.mark.timeout(TASK_TIMEOUT)
@pytest.mark.parametrize("tools", [[], [ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]], ids=["without-tools", "with-tools"])
async def test_chat_completions_with_and_without_tools(llama: LlamaServer, tools: list[ToolName]) -> None:
    response = await chat(llama, code_request(tools))
    print(describe(Exchange(request=code_request(tools), response=response)))
    assert response.model == MODEL and response.input_tokens > 0 and response.output_tokens > 0
    assert response.content.strip() or response.tool_calls


@pytest.mark.timeout(TASK_TIMEOUT)
async def test_the_tools_results_go_back_in_the_shape_the_server_takes(llama: LlamaServer) -> None:
    """The second step of a tool loop: the assistant's tool call (content null) and the tool's result, as the
    product sends them; the server renders them into its chat template and answers."""
    request = code_request([ToolName.SEARCH_KNOWLEDGE, ToolName.LINT])
    call = ToolCall(id="call_1", name=ToolName.LINT.value, arguments={"code": "def add(a, b):\n    return a + b\n"})
    request.messages += [
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="call_1", content="pylint score: 6.67/10, 1 message(s)"),
    ]
    response = await chat(llama, request)
    print(describe(Exchange(request=request, response=response)))
    first_step = await chat(llama, code_request([ToolName.SEARCH_KNOWLEDGE, ToolName.LINT]))
    assert response.input_tokens > first_step.input_tokens  # the call and its result went into the prompt
    assert response.content.strip() or response.tool_calls


async def test_an_answer_cut_at_max_tokens_says_so(llama: LlamaServer) -> None:
    """finish_reason "length": the answer stops mid-way; it is kept, with a warning the task shows."""
    response = await chat(llama, code_request([], max_tokens=8))
    assert response.output_tokens == 8
    assert response.warnings == [f"{MODEL} stopped at the length limit (max_tokens 8): the answer is cut short"]
