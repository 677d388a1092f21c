"""The workflow's sandbox-safe parts, without a server: answers, tools, the event log, search attributes."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from temporalio.common import TypedSearchAttributes

from workflows import quality
from workflows.events import MAX_EVENTS, EventLog
from workflows.models import (
    FILE_PATH_PATTERN,
    MODEL_PATTERN,
    AgentRole,
    Budget,
    BudgetRaise,
    CallAllowance,
    CodingTaskInput,
    EventType,
    LintMessage,
    LintResult,
    LintRound,
    LlmResponse,
    Provider,
    TaskState,
    TaskStatus,
    ToolCall,
    ToolName,
    parse_model_id,
    start_search_attributes,
)
from workflows.prompts import code_context, split_code_answer
from workflows.tools import (
    MAX_TOOL_CODE,
    MAX_TOP_K,
    LintArgs,
    SearchKnowledgeArgs,
    parse_arguments,
    tool_call,
    tool_specs,
)
from workflows.usage import allowance, apply_raise, check_raise, record_reply, total_tokens
from workflows.visibility import SearchAttributeSync, details_line


def test_split_code_answer_takes_the_longest_fenced_block() -> None:
    answer = "Here:\n```python\nx = 1\ny = 2\n```\nand a usage example\n```\nx\n```\nDone."
    code, explanation = split_code_answer(answer)
    assert code == "x = 1\ny = 2\n"
    assert explanation == "Here:\n\nand a usage example\n\nDone."
    assert split_code_answer("print('no fence')") == ("print('no fence')", "")


def test_the_code_context_is_the_text_then_each_file_under_its_path() -> None:
    def task(**fields: object) -> CodingTaskInput:
        return CodingTaskInput.model_validate({"task_description": "t", **fields})

    assert code_context(task()) is None and code_context(task(code_context="  ")) is None
    assert code_context(task(code_context="x = 1\n")) == "x = 1"  # as before files: old histories' prompts
    both = code_context(task(code_context="ctx", files=[{"path": "a.py", "content": "y = 2\n"}]))
    assert both == "ctx\n\n### File: a.py\n```\ny = 2\n```"
    fenced = code_context(task(files=[{"path": "doc.md", "content": "`````\n"}]))
    assert fenced == "### File: doc.md\n``````\n`````\n``````"
    for bad in ("../a.py", "a/./b", "/a", "a\\b", "a/", "...", "a\n"):
        with pytest.raises(ValidationError):
            task(files=[{"path": bad, "content": ""}])
    assert re.fullmatch(FILE_PATH_PATTERN, "src/.env") and not re.fullmatch(FILE_PATH_PATTERN, "src/../.env")


def test_tool_schemas_are_derived_from_the_argument_models() -> None:
    lint, search = tool_specs([ToolName.LINT, ToolName.SEARCH_KNOWLEDGE])
    assert (lint.name, search.name) == ("lint", "search_knowledge")
    assert lint.parameters["required"] == ["code"] and lint.parameters["properties"]["code"]["type"] == "string"
    assert search.parameters["required"] == ["query"]
    assert search.parameters["properties"]["top_k"] | {"description": ""} == {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_TOP_K,
        "default": 3,
        "title": "Top K",
        "description": "",
    }
    assert lint.description.startswith("Run pylint on a complete Python module")
    assert "title" not in lint.parameters
    assert tool_specs([ToolName.LINT]) == [lint] and tool_specs([ToolName.LINT])[0] is lint  # derived once


def test_tool_arguments_are_validated_against_the_models() -> None:
    def parse(name: str, arguments: object) -> object:
        return parse_arguments(ToolCall(id="c", name=name, arguments=arguments))

    assert parse("lint", {"code": "x = 1\n"}) == LintArgs(code="x = 1\n")
    assert parse("search_knowledge", {"query": "add"}) == SearchKnowledgeArgs(query="add", top_k=3)
    assert parse("lint", {"code": "   "}) == "invalid arguments for lint: code: Value error, must not be blank"
    assert parse("lint", {}) == "invalid arguments for lint: code: Field required"
    too_long = parse("lint", {"code": "x" * (MAX_TOOL_CODE + 1)})
    assert isinstance(too_long, str) and "at most 100000 characters" in too_long
    # lax like pydantic: a model that quotes a number is understood, one that sends a word is told
    assert parse("search_knowledge", {"query": "q", "top_k": "2"}) == SearchKnowledgeArgs(query="q", top_k=2)
    assert parse("search_knowledge", {"query": "q", "top_k": "two"}) == (
        "invalid arguments for search_knowledge: top_k: Input should be a valid integer, unable to parse string as an "
        "integer"
    )
    assert parse("format_disk", {}) == "unknown tool 'format_disk'; available: lint, search_knowledge, run_tests"
    call = tool_call("id1", SearchKnowledgeArgs(query="add", top_k=2))
    assert call == ToolCall(id="id1", name="search_knowledge", arguments={"query": "add", "top_k": 2})


def test_event_log_pages_resumes_and_forgets_the_oldest() -> None:
    log = EventLog()
    for n in range(MAX_EVENTS + 5):
        log.emit(f"t{n}", EventType.STATUS, f"message {n}")
    assert log.last_id == MAX_EVENTS + 5 and log.next_id == MAX_EVENTS + 6
    page = log.page(after=0, task_status=TaskStatus.RUNNING)
    assert [e.id for e in page.events] == list(range(6, MAX_EVENTS + 6))  # the first five fell out of the ring
    assert [e.id for e in log.page(after=MAX_EVENTS + 3, task_status=TaskStatus.RUNNING).events] == [504, 505]
    assert log.log_lines()[-1] == f"t{MAX_EVENTS + 4} message {MAX_EVENTS + 4}" and len(log.log_lines()) == 200
    resumed = EventLog(log.recent(), log.next_id)  # what continue-as-new hands over
    assert resumed.emit("t", EventType.RESUMED, "resumed").id == MAX_EVENTS + 6


def _state() -> TaskState:
    return TaskState(session_id="s", task_description="d", created_at="t", updated_at="t")


def test_search_attributes_are_sent_only_when_they_change_and_tokens_wait_for_a_phase_change() -> None:
    sync = SearchAttributeSync(start_search_attributes(owner="alice"))
    state = _state()
    assert sync.updates(state) == []  # TaskStatus=planning and Owner were set at start
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="openai:gpt-4o", input_tokens=7, output_tokens=3))
    assert sync.updates(state) == []  # only tokens changed: they wait
    state.task_status = TaskStatus.RUNNING
    state.current_agent = AgentRole.CODE_GENERATION
    record_reply(state, AgentRole.CODE_GENERATION, LlmResponse(model="openai:gpt-4o", output_tokens=10))
    sent = {u.key.name: u.value for u in sync.updates(state)}
    assert sent == {
        "TaskStatus": "running",
        "Agent": "code_generation",
        "CodeModel": "openai:gpt-4o",
        "TotalTokens": 20,
    }
    state.current_agent = None
    [unset] = sync.updates(state)
    assert unset.key.name == "Agent" and unset.value is None
    assert sync.updates(state) == []


def test_a_task_started_without_task_status_keeps_no_search_attributes() -> None:
    sync = SearchAttributeSync(TypedSearchAttributes.empty)
    state = _state()
    state.task_status = TaskStatus.COMPLETED
    assert not sync.enabled and sync.updates(state) == []


def test_usage_cost_and_the_details_line() -> None:
    state = _state()
    reply = LlmResponse(model="offline", input_tokens=7, output_tokens=3, cached_input_tokens=2, cost_usd=0.25)
    record_reply(state, AgentRole.PLANNER, reply)
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="offline", input_tokens=1, output_tokens=1, cost_usd=0.5))
    assert state.usage["offline"].model_dump() == {
        "calls": 2,
        "input_tokens": 8,
        "output_tokens": 4,
        "cached_input_tokens": 2,
        "cost_usd": 0.75,
    }
    assert total_tokens(state) == 12 and state.cost_usd == 0.75
    assert state.budget.model_dump() == {
        "budget_usd": None,
        "budget_tokens": None,
        "spent_usd": 0.75,
        "spent_tokens": 12,
        "needed_usd": None,
        "needed_tokens": None,
    }
    record_reply(state, AgentRole.CODE_GENERATION, LlmResponse(model="openai:unpriced", output_tokens=1))
    assert state.usage["openai:unpriced"].cost_usd is None and state.cost_usd is None  # never a guessed number
    assert state.usage["offline"].cost_usd == 0.75
    assert details_line(state) == "**planning** · 13 tokens · cost unknown"
    assert (
        details_line(state, "planner · offline · step 1")
        == "**planning** · planner · offline · step 1 · 13 tokens · cost unknown"
    )


def test_model_ids_are_parsed_in_one_place() -> None:
    assert parse_model_id("openai:gpt-4o") == (Provider.OPENAI, "gpt-4o")
    assert parse_model_id("anthropic:claude-sonnet-4-6") == (Provider.ANTHROPIC, "claude-sonnet-4-6")
    assert parse_model_id("offline") == (Provider.OFFLINE, "offline")
    assert re.fullmatch(MODEL_PATTERN, "openai:ft:gpt-4o:org::id") and not re.fullmatch(MODEL_PATTERN, "gpt-4o")
    assert not re.fullmatch(MODEL_PATTERN, "mistral:large") and not re.fullmatch(MODEL_PATTERN, "offline:x")


def test_the_allowance_is_what_is_left_and_a_raise_must_be_above_the_spend() -> None:
    state = _state()
    assert allowance(state) is None  # no budget, no check
    state.budget = Budget(budget_usd=1.0, budget_tokens=100)
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="m", input_tokens=30, output_tokens=10, cost_usd=0.4))
    assert allowance(state) == CallAllowance(usd=0.6, tokens=60)
    with pytest.raises(ValueError, match="give budget_usd, budget_tokens or both"):
        BudgetRaise(budget_usd=None)
    for refused, why in [
        (BudgetRaise(budget_usd=0.4), "budget_usd must be above what is spent ($0.400000)"),
        (BudgetRaise(budget_tokens=40), "budget_tokens must be above what is spent (40 tokens)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)):
            check_raise(state, refused)
    check_raise(state, BudgetRaise(budget_usd=2.0))
    apply_raise(state, BudgetRaise(budget_usd=2.0))
    assert state.budget.budget_usd == 2.0 and state.budget.budget_tokens == 100
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="unpriced", output_tokens=1))
    with pytest.raises(ValueError, match="its spend in USD is unknown"):
        check_raise(state, BudgetRaise(budget_usd=5.0))
    check_raise(state, BudgetRaise(budget_tokens=500))  # tokens are still counted


def _lint(score: float | None, *ids: str, error: str | None = None) -> LintResult:
    kinds = {"E": "error", "F": "fatal", "W": "warning", "C": "convention"}
    messages = [
        LintMessage(line=n + 1, column=0, symbol=f"sym-{i}", message_id=i, type=kinds[i[0]], message=f"msg {i}")
        for n, i in enumerate(ids)
    ]
    return LintResult(score=score, messages=messages, error=error)


def test_the_quality_gate_judges_score_and_error_messages() -> None:
    assert quality.passes(_lint(9.0, "C0114"), 8.0)
    assert not quality.passes(_lint(9.5, "E0602"), 8.0)  # an error fails whatever the score
    assert not quality.passes(_lint(7.9), 8.0)
    assert not quality.passes(_lint(None, "E0001"), 0.0)  # a syntax error has no score
    assert not quality.passes(_lint(None, error="pylint timed out"), 0.0)
    assert quality.errors(_lint(3.3, "E0602", "F0001", "W0611", "C0114")) == 2
    prompt = quality.fix_prompt(_lint(3.3, "C0114", "E0602"), 8.0)
    assert prompt.startswith("pylint scored 3.3/10 (the bar is 8, with no error messages):\nE0602 sym-E0602")
    assert prompt.endswith("Fix these and answer with the complete module.")
    assert quality.fix_prompt(_lint(None, "E0001"), 8.0).startswith("pylint could not score the module (the bar is 8")
    assert quality.lint_round(1, _lint(3.3, "E0602"), _lint(10.0)) == LintRound(
        round=1, score_before=3.3, score_after=10.0, errors_before=1, errors_after=0
    )
