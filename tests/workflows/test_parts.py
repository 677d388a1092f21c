"""The workflow's sandbox-safe parts, without a server: answers, tools, the event log, search attributes."""

from __future__ import annotations

import re

from temporalio.common import TypedSearchAttributes

from workflows.events import MAX_EVENTS, EventLog
from workflows.models import (
    MODEL_PATTERN,
    AgentRole,
    EventType,
    LlmResponse,
    Provider,
    TaskState,
    TaskStatus,
    ToolCall,
    ToolName,
    parse_model_id,
    start_search_attributes,
)
from workflows.prompts import split_code_answer
from workflows.tools import (
    MAX_TOOL_CODE,
    MAX_TOP_K,
    LintArgs,
    SearchKnowledgeArgs,
    parse_arguments,
    tool_call,
    tool_specs,
)
from workflows.usage import record_reply, total_tokens
from workflows.visibility import SearchAttributeSync, details_line


def test_split_code_answer_takes_the_longest_fenced_block() -> None:
    answer = "Here:\n```python\nx = 1\ny = 2\n```\nand a usage example\n```\nx\n```\nDone."
    code, explanation = split_code_answer(answer)
    assert code == "x = 1\ny = 2\n"
    assert explanation == "Here:\n\nand a usage example\n\nDone."
    assert split_code_answer("print('no fence')") == ("print('no fence')", "")


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


def test_tool_arguments_are_validated_against_the_models() -> None:
    def parse(name: str, arguments: object) -> object:
        return parse_arguments(ToolCall(id="c", name=name, arguments=arguments))

    assert parse("lint", {"code": "x = 1\n"}) == LintArgs(code="x = 1\n")
    assert parse("search_knowledge", {"query": "add"}) == SearchKnowledgeArgs(query="add", top_k=3)
    assert parse("lint", {"code": "   "}) == "invalid arguments for lint: code: Value error, code must not be blank"
    assert parse("lint", {}) == "invalid arguments for lint: code: Field required"
    too_long = parse("lint", {"code": "x" * (MAX_TOOL_CODE + 1)})
    assert isinstance(too_long, str) and "at most 100000 characters" in too_long
    # lax like pydantic: a model that quotes a number is understood, one that sends a word is told
    assert parse("search_knowledge", {"query": "q", "top_k": "2"}) == SearchKnowledgeArgs(query="q", top_k=2)
    assert parse("search_knowledge", {"query": "q", "top_k": "two"}) == (
        "invalid arguments for search_knowledge: top_k: Input should be a valid integer, unable to parse string as an "
        "integer"
    )
    assert parse("format_disk", {}) == "unknown tool 'format_disk'; available: lint, search_knowledge"
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


def test_usage_and_the_details_line() -> None:
    state = _state()
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="offline", input_tokens=7, output_tokens=3))
    record_reply(state, AgentRole.PLANNER, LlmResponse(model="offline", input_tokens=1, output_tokens=1))
    assert state.usage["offline"].model_dump() == {"calls": 2, "input_tokens": 8, "output_tokens": 4}
    assert total_tokens(state) == 12
    assert details_line(state) == "**planning** · 12 tokens"
    assert details_line(state, "planner · offline · step 1") == "**planning** · planner · offline · step 1 · 12 tokens"


def test_model_ids_are_parsed_in_one_place() -> None:
    assert parse_model_id("openai:gpt-4o") == (Provider.OPENAI, "gpt-4o")
    assert parse_model_id("anthropic:claude-sonnet-4-6") == (Provider.ANTHROPIC, "claude-sonnet-4-6")
    assert parse_model_id("offline") == (Provider.OFFLINE, "offline")
    assert re.fullmatch(MODEL_PATTERN, "openai:ft:gpt-4o:org::id") and not re.fullmatch(MODEL_PATTERN, "gpt-4o")
    assert not re.fullmatch(MODEL_PATTERN, "mistral:large") and not re.fullmatch(MODEL_PATTERN, "offline:x")
