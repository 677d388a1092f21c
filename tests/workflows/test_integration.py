"""The CodingTask workflow end to end on a real dev server, with the real openai/anthropic SDKs against fakes."""

from __future__ import annotations

import json
import time

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker

from activities.config import WorkerSettings
from testbed.llm_server import GOOD_CODE, FakeLlmServer, Fault
from tests.support import product_worker, start_task, wait_for_state, wait_until
from workflows.coding_task import CodingTask
from workflows.models import FeedbackInput, TaskStatus

AWAITING = TaskStatus.AWAITING_FEEDBACK


def _bodies(fake: FakeLlmServer, provider: str) -> list[dict]:
    return [r["body"] for r in fake.requests if r["provider"] == provider and r["status"] == 200]


async def test_full_task_plans_codes_lints_documents_and_completes_on_feedback(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue)
    state = await wait_for_state(handle, lambda s: s.task_status == AWAITING)

    assert state.plan and state.plan.startswith("1. Write an add function")
    code = state.results.code_generation
    assert code is not None and code.code == GOOD_CODE and code.model == "openai:gpt-4o"
    assert code.lint is not None and code.lint.score == 10.0 and code.lint.error is None
    docs = state.results.documentation
    assert docs is not None and docs.model == "anthropic:claude-sonnet-4-6" and "# add" in docs.documentation
    assert set(state.usage) == {"openai:gpt-4o-mini", "openai:gpt-4o", "anthropic:claude-sonnet-4-6"}
    assert state.usage["openai:gpt-4o"].calls == 2 and state.usage["openai:gpt-4o"].input_tokens > 0
    assert state.errors == []

    # Native tool calling on both providers: tool results went back in each provider's own shape.
    openai_calls = _bodies(fake_llm, "openai")
    assert len(openai_calls) == 3  # planner + two code-agent turns
    tool_msgs = [m for m in openai_calls[2]["messages"] if m["role"] == "tool"]
    assert {m["tool_call_id"] for m in tool_msgs} == {"call_0_0", "call_0_1"}
    lint_result = next(m["content"] for m in tool_msgs if m["tool_call_id"] == "call_0_1")
    assert "pylint score" in lint_result and "bad-indentation" in lint_result  # real pylint ran on DRAFT_CODE
    assert openai_calls[1]["tools"][0]["type"] == "function"
    anthropic_calls = _bodies(fake_llm, "anthropic")
    assert len(anthropic_calls) == 2
    blocks = anthropic_calls[1]["messages"][-1]["content"]
    assert [b["type"] for b in blocks] == ["tool_result"] and blocks[0]["tool_use_id"] == "toolu_0"
    [first_turn] = anthropic_calls[0]["messages"][0]["content"]  # one text block, the cache breakpoint on it
    assert GOOD_CODE.strip() in first_turn["text"] and first_turn["cache_control"] == {"type": "ephemeral"}
    assert all(count == 1 for count in fake_llm.served.values())

    await handle.signal(CodingTask.feedback, FeedbackInput(rating=5, comment="great"))
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    assert [(f.rating, f.comment) for f in final.feedback] == [(5, "great")]

    # API keys are read by the activities from the worker's settings: they never enter the history.
    history = json.dumps((await handle.fetch_history()).to_json_dict())
    assert "sk-test-openai" not in history and "sk-test-anthropic" not in history
    sent = {(r["provider"], r["headers"].get("x-api-key") or r["headers"]["authorization"]) for r in fake_llm.requests}
    assert sent == {("openai", "Bearer sk-test-openai"), ("anthropic", "Bearer sk-test-anthropic")}


async def test_invalid_feedback_is_recorded_and_never_crashes_the_workflow(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await start_task(client, task_queue)
    await wait_for_state(handle, lambda s: s.task_status == AWAITING)
    for bad in ({"rating": 9}, {"rating": "5"}, "not an object", {"rating": 3, "extra": 1}, None, {"comment": "x"}):
        await handle.signal("feedback", bad)
    state = await wait_for_state(handle, lambda s: len(s.errors) == 6)
    assert state.task_status == AWAITING and state.feedback == []
    assert all(e.startswith("invalid feedback ignored") for e in state.errors)
    assert "rating: Input should be less than or equal to 5" in state.errors[0]
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=4))
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.feedback[0].rating == 4


async def test_low_rating_with_comment_revises_code_then_refreshes_docs(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue, max_revisions=1)
    await wait_for_state(handle, lambda s: s.task_status == AWAITING)
    await handle.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="please add input validation"))
    state = await wait_for_state(handle, lambda s: s.task_status == AWAITING and s.revisions == 1)
    assert state.results.code_generation is not None and state.results.code_generation.revision == 1
    assert state.results.documentation is not None and state.results.documentation.code_revision == 1
    revision_prompts = [b["messages"][1]["content"] for b in _bodies(fake_llm, "openai")]
    assert any("please add input validation" in p and "Previous version" in p for p in revision_prompts)
    assert len(_bodies(fake_llm, "anthropic")) == 4  # docs written twice

    await handle.signal(CodingTask.feedback, FeedbackInput(rating=2, comment="still not good"))
    final = await handle.result()  # revision limit reached: the task completes
    assert final.task_status == TaskStatus.COMPLETED and final.revisions == 1
    assert any("revision limit" in line for line in final.logs)


async def test_cancel_keeps_partial_results_queryable(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    fake_llm.hold_after = 2  # planner and the first code turn are answered, then the model "hangs"
    handle = await start_task(client, task_queue)
    await wait_until(lambda: fake_llm.held >= 1)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.CANCELLED
    assert state.plan and state.results.code_generation is None


async def test_rate_limit_is_retried_after_the_servers_retry_after(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    fake_llm.add_fault("openai", Fault(status=429, headers={"retry-after": "2"}, match="senior Python engineer"))
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    statuses = [r["status"] for r in fake_llm.requests if r["provider"] == "openai"]
    assert statuses[:3] == [200, 429, 200]
    (limited,) = [i for i, r in enumerate(fake_llm.requests) if r["status"] == 429]
    gap = fake_llm.requests[limited + 1]["at"] - fake_llm.requests[limited]["at"]
    assert gap >= 1.9  # waited for Retry-After, not the policy's 1 s initial interval
    assert all(count == 1 for count in fake_llm.served.values())


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=529, body='{"type":"error","error":{"type":"overloaded_error","message":"busy"}}'),
        Fault(delay=3.0),  # longer than the SDK timeout (2 s in the tests)
        Fault(body="this is not json"),
        Fault(body=json.dumps({"id": "m", "type": "message", "role": "assistant", "model": "x", "content": [],
                               "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 0}})),
    ],
    ids=["500", "529-overloaded", "timeout", "malformed-body", "empty-reply"],
)  # fmt: skip
async def test_transient_provider_faults_are_retried(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str, fault: Fault
) -> None:
    fake_llm.add_fault("anthropic", fault)
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    assert final.results.documentation is not None
    attempts = [r for r in fake_llm.requests if r["provider"] == "anthropic"]
    assert len(attempts) == 3  # the faulty attempt, its retry, the second doc turn


async def test_authentication_error_fails_fast_and_clearly(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    fake_llm.add_fault("anthropic", Fault(status=401))
    handle = await start_task(client, task_queue)
    started = time.monotonic()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert time.monotonic() - started < 20
    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "TaskFailed"
    state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.FAILED
    assert "HTTP 401" in state.errors[-1] and "ANTHROPIC_API_KEY" in state.errors[-1]
    assert len([r for r in fake_llm.requests if r["provider"] == "anthropic"]) == 1  # not retried
    assert state.results.code_generation is not None  # partial results kept


async def test_malformed_tool_arguments_go_back_to_the_model_as_a_tool_error(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    bad_call = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "bad1", "type": "function", "function": {"name": "lint", "arguments": "{not json"}},
                        {"id": "bad2", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}},
                        {"id": "bad3", "type": "function", "function": {"name": "lint", "arguments": '{"code": 3}'}},
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    fake_llm.add_fault("openai", Fault(body=json.dumps(bad_call), match="senior Python engineer"))
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    follow_up = next(b for b in _bodies(fake_llm, "openai") if any(m["role"] == "tool" for m in b["messages"]))
    results = {m["tool_call_id"]: m["content"] for m in follow_up["messages"] if m["role"] == "tool"}
    assert "not valid JSON" in results["bad1"]
    assert "unknown tool 'rm_rf'" in results["bad2"]
    assert results["bad3"] == "invalid arguments for lint: code: Input should be a valid string"


async def test_offline_model_runs_the_whole_pipeline_without_keys(
    client: Client, task_queue: str, memory_api_url: str
) -> None:
    settings = WorkerSettings(_env_file=None, temporal_task_queue=task_queue, memory_api_url=memory_api_url)
    assert settings.openai_api_key is None and settings.llm_mode == "auto"
    async with product_worker(client, settings):
        handle = await start_task(
            client, task_queue, task_description="parse ISO-8601 durations", feedback_window_seconds=0
        )
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    code = final.results.code_generation
    assert code is not None and "OFFLINE PLACEHOLDER" in code.code and code.model == "offline"
    assert code.lint is not None and code.lint.score is not None
    assert (
        final.results.documentation is not None and "OFFLINE PLACEHOLDER" in final.results.documentation.documentation
    )
    assert any("OPENAI_API_KEY is not set" in w for w in final.warnings)
    assert any("ANTHROPIC_API_KEY is not set" in w for w in final.warnings)
    assert set(final.usage) == {"offline"}


async def test_task_input_is_validated_before_anything_runs(client: Client, task_queue: str) -> None:
    from pydantic import ValidationError

    for bad in (
        {"task_description": "   "},
        {"task_description": "x", "code_model": "gpt-4o"},
        {"task_description": "x", "max_agent_steps": 0},
    ):
        with pytest.raises(ValidationError):
            await start_task(client, task_queue, **bad)
