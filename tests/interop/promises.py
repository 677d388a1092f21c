"""What the product promises for whatever a model answers, checked against a finished task's own history.

A small model answers anything: no tool call, a tool call with arguments that are not what the tool takes, a
name that is no tool, prose with no code block, nothing at all. The history holds every model call's request
and reply (the `llm_chat` activity's input and result); from those this module derives what the workflow must
have done with each reply and compares it with what it did (the next request, the final state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from workflows.models import LLM_ACTIVITY, AgentRole, ChatMessage, LlmRequest, LlmResponse, TaskState, ToolName
from workflows.prompts import split_code_answer

TOOL_ARGUMENT_ERRORS = {
    ToolName.LINT.value: "lint needs a non-empty 'code' string argument",
    ToolName.SEARCH_KNOWLEDGE.value: "search_knowledge needs a non-empty 'query' string argument",
}
REQUIRED_ARGUMENT = {ToolName.LINT.value: "code", ToolName.SEARCH_KNOWLEDGE.value: "query"}


@dataclass
class Exchange:
    """One model call: the request, and the reply or the activity's final failure."""

    request: LlmRequest
    response: LlmResponse | None = None
    failure: str | None = None
    attempts: int = 1


async def llm_exchanges(client: Client, handle: WorkflowHandle[Any, Any]) -> list[Exchange]:
    exchanges: dict[int, Exchange] = {}
    async for event in handle.fetch_history_events():
        await _collect(client, event, exchanges)
    return [exchanges[key] for key in sorted(exchanges)]


async def _collect(client: Client, event: HistoryEvent, exchanges: dict[int, Exchange]) -> None:
    converter = client.data_converter
    if event.HasField("activity_task_scheduled_event_attributes"):
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == LLM_ACTIVITY:
            [request] = await converter.decode(scheduled.input.payloads, [LlmRequest])
            exchanges[event.event_id] = Exchange(request=request)
    elif event.HasField("activity_task_started_event_attributes"):
        started = event.activity_task_started_event_attributes
        if started.scheduled_event_id in exchanges:
            exchanges[started.scheduled_event_id].attempts = started.attempt
    elif event.HasField("activity_task_completed_event_attributes"):
        completed = event.activity_task_completed_event_attributes
        if completed.scheduled_event_id in exchanges:
            [response] = await converter.decode(completed.result.payloads, [LlmResponse])
            exchanges[completed.scheduled_event_id].response = response
    elif event.HasField("activity_task_failed_event_attributes"):
        failed = event.activity_task_failed_event_attributes
        if failed.scheduled_event_id in exchanges:
            exchanges[failed.scheduled_event_id].failure = failed.failure.message


def describe(exchange: Exchange) -> str:
    """One line per model call, for the report: what was asked (tools or not) and the shape of the answer."""
    request, response = exchange.request, exchange.response
    asked = f"{request.role} ({'with' if request.tools else 'without'} tools)"
    if response is None:
        return f"{asked}: failed after {exchange.attempts} attempt(s): {exchange.failure}"
    tokens = f"{response.input_tokens}+{response.output_tokens} tokens"
    if response.tool_calls:
        calls = ", ".join(
            f"{c.name}({tool_call_shape(c.name, c.arguments, c.arguments_error)})" for c in response.tool_calls
        )
        return f"{asked}: {len(response.tool_calls)} tool call(s): {calls}; {tokens}"
    blocks = "a code block" if has_code_block(response.content) else "no code block"
    return f"{asked}: text, {blocks}, {len(response.content)} chars; {tokens}: {response.content[:100]!r}"


def has_code_block(answer: str) -> bool:
    """`split_code_answer` takes the whole answer as the code when it has no fenced block."""
    return split_code_answer(answer)[0] != answer.strip()


def tool_call_shape(name: str, arguments: dict[str, object], arguments_error: str | None) -> str:
    if arguments_error:
        return f"malformed: {arguments_error}"
    if name not in REQUIRED_ARGUMENT:
        return "unknown tool"
    value = arguments.get(REQUIRED_ARGUMENT[name])
    if not isinstance(value, str) or not value.strip():
        return f"no {REQUIRED_ARGUMENT[name]!r} argument"
    return "well-formed"


def expected_tool_error(name: str, arguments: dict[str, object], arguments_error: str | None) -> str | None:
    """The error text the workflow promises to hand back for this call, or None when the tool runs."""
    if arguments_error:
        return f"invalid arguments for {name}: {arguments_error}"
    if name not in REQUIRED_ARGUMENT:
        return f"unknown tool {name!r}; available: lint, search_knowledge"
    value = arguments.get(REQUIRED_ARGUMENT[name])
    if not isinstance(value, str) or not value.strip():
        return TOOL_ARGUMENT_ERRORS[name]
    return None


def check_tool_results(exchange: Exchange, following: Exchange) -> None:
    """Every tool call of a reply is answered in the next request, with the error the workflow promises."""
    assert exchange.response is not None
    messages = following.request.messages
    assistant = ChatMessage(
        role="assistant", content=exchange.response.content, tool_calls=exchange.response.tool_calls
    )
    position = messages.index(assistant)  # the reply goes back to the model as it came
    results = {m.tool_call_id: m for m in messages[position + 1 :] if m.role == "tool"}
    for call in exchange.response.tool_calls:
        result = results[call.id]
        error = expected_tool_error(call.name, call.arguments, call.arguments_error)
        if error is not None:
            assert result.is_error and result.content == error, (call, result)
        elif result.is_error:  # the tool ran and failed: a lint or knowledge-base failure, said as such
            assert result.content.startswith(("lint failed:", "knowledge base unavailable")), result
        assert not result.is_error or result.content, result


def check_agent(role: AgentRole, exchanges: list[Exchange], state: TaskState) -> None:
    """One agent's model calls, in order, against the workflow's promises and the final state."""
    for step, exchange in enumerate(exchanges, start=1):
        assert exchange.request.role == role
        for warning in exchange.response.warnings if exchange.response is not None else []:  # e.g. cut short
            assert warning in state.warnings, state.warnings
        last = step == len(exchanges)
        if not last and exchange.response is not None and not exchange.response.tool_calls:
            # an answer below the quality gate's bar: the next call is a fix round with pylint's verdict
            verdict = exchanges[step].request.messages[-1]
            assert verdict.role == "user" and verdict.content.startswith("pylint "), describe(exchanges[step])
        elif not last:  # a reply with tool calls: the loop goes on with the tools' results
            assert exchange.response is not None and exchange.response.tool_calls, describe(exchange)
            check_tool_results(exchange, exchanges[step])
    final = exchanges[-1]
    if final.response is None:  # the call failed for good: the task fails and says which call
        assert state.errors and f"{role} model call failed" in state.errors[-1], state.errors
        return
    if final.response.tool_calls:  # out of steps while still calling tools
        assert state.errors and f"{role} agent gave no final answer" in state.errors[-1], state.errors
        return
    answer = final.response.content
    if role == AgentRole.CODE_GENERATION:
        code, explanation = split_code_answer(answer)
        result = state.results.code_generation
        assert result is not None and result.code == code and result.explanation == explanation
        assert result.lint is not None and (result.lint.score is not None or result.lint.error), result.lint
        assert result.steps == len(exchanges)
    elif role == AgentRole.DOCUMENTATION:
        docs = state.results.documentation
        assert docs is not None and docs.documentation == answer.strip() and docs.steps == len(exchanges)
    else:
        assert state.plan == answer.strip()
