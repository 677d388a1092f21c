"""The quality gate with real pylint and the real OpenAI SDK against the fake provider."""

from __future__ import annotations

import json

from temporalio.client import Client
from temporalio.worker import Worker

from testbed.llm_server import GOOD_CODE, NEEDS_ONE_FIX, NEVER_FIXES, FakeLlmServer
from tests.support import start_task
from workflows.models import SA_LINT_GATE, LintGate, TaskStatus


def _code_requests(fake: FakeLlmServer) -> list[dict]:
    return [r["body"] for r in fake.requests if r["provider"] == "openai" and "senior Python" in json.dumps(r["body"])]


async def test_lint_failing_code_is_sent_back_and_fixed_in_one_round(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(
        client, task_queue, feedback_window_seconds=0, task_description=f"write an add function {NEEDS_ONE_FIX}"
    )
    final = await handle.result()
    code = final.results.code_generation
    assert code is not None and code.code == GOOD_CODE and code.lint_gate == LintGate.PASSED
    [round_one] = code.lint_rounds
    assert round_one.round == 1 and round_one.errors_before >= 1 and round_one.errors_after == 0
    assert round_one.score_after == 10.0 and (round_one.score_before or 0) < 8.0
    verdict = _code_requests(fake_llm)[-1]["messages"][-1]
    assert verdict["role"] == "user" and verdict["content"].startswith("pylint scored")
    assert "E0602 undefined-variable Undefined variable 'secnd'" in verdict["content"]  # real pylint's message
    assert (await handle.describe()).typed_search_attributes.get(SA_LINT_GATE) == "passed"
    assert final.warnings == []


async def test_a_model_that_never_fixes_is_stopped_after_the_rounds(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(
        client,
        task_queue,
        feedback_window_seconds=0,
        max_fix_rounds=2,
        task_description=f"write an add function {NEVER_FIXES}",
    )
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    code = final.results.code_generation
    assert code is not None and code.lint_gate == LintGate.FAILED and len(code.lint_rounds) == 2
    assert sum(1 for body in _code_requests(fake_llm) if "pylint scored" in json.dumps(body["messages"][-1])) == 2
    assert any(w.startswith("quality gate failed after 2 fix round(s) (bar 8)") for w in final.warnings)
    assert final.results.documentation is not None
    assert "secnd" in json.dumps(next(r["body"] for r in fake_llm.requests if r["provider"] == "anthropic"))
    assert (await handle.describe()).typed_search_attributes.get(SA_LINT_GATE) == "failed"
