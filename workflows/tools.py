"""The agents' tools as typed contracts: one argument model per tool, written once.

The providers' JSON schemas are derived from these models (`tool_specs`), the workflow validates a model's
arguments against them (`parse_arguments`: the message goes back to the model as the tool's result), and the
offline model builds its calls from them. Sandbox-safe: pydantic only.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows.models import MAX_TESTS, LlmRequest, RagResult, ToolCall, ToolName
from workflows.strict import NotBlankStr

MAX_TOOL_CODE = 100_000
MAX_QUERY = 2_000
MAX_TOP_K = 10
RAG_SNIPPET_CHARS = 1_500


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LintArgs(_Arguments):
    """Run pylint on a complete Python module (the code is never executed). Returns the score out of 10 and the
    messages."""

    code: NotBlankStr = Field(min_length=1, max_length=MAX_TOOL_CODE, description="the complete Python module")


class RunTestsArgs(_Arguments):
    """Run pytest on a complete Python module in a sandbox (no network, nothing kept). When the task gives tests,
    those are run and `tests` is ignored; otherwise give your own. Returns the counts and each failure."""

    code: NotBlankStr = Field(min_length=1, max_length=MAX_TOOL_CODE, description="the complete Python module")
    tests: NotBlankStr | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TESTS,
        description="pytest tests that import the module (ignored when the task gives its own)",
    )


class SearchKnowledgeArgs(_Arguments):
    """Search the team's knowledge base (indexed code and docs) for snippets relevant to a query."""

    query: NotBlankStr = Field(
        min_length=1, max_length=MAX_QUERY, description="what to look for, in words or identifiers"
    )
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K, description="how many snippets")


ToolArgs = LintArgs | SearchKnowledgeArgs | RunTestsArgs
TOOL_ARGS: dict[ToolName, type[ToolArgs]] = {
    ToolName.LINT: LintArgs,
    ToolName.SEARCH_KNOWLEDGE: SearchKnowledgeArgs,
    ToolName.RUN_TESTS: RunTestsArgs,
}


@dataclass(frozen=True)
class ToolSpec:
    """What a provider is told about a tool: its name, a description and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


def tool_specs(names: list[ToolName]) -> list[ToolSpec]:
    return [_tool_spec(name) for name in names]


@functools.cache
def _tool_spec(name: ToolName) -> ToolSpec:
    """Derived once per tool: pydantic takes about 0.2 ms to build one JSON schema, and every model call asks for them
    (twice: its cost estimate and its request). Read-only: the same spec is handed to every call."""
    model = TOOL_ARGS[name]
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return ToolSpec(name.value, " ".join((model.__doc__ or "").split()), schema)


def request_tool_specs(request: LlmRequest) -> list[ToolSpec]:
    """Every tool a model call offers: the built-in ones, then the MCP tools (as the server describes them)."""
    mcp = [ToolSpec(tool.model_name, tool.description or tool.name, tool.parameters) for tool in request.mcp_tools]
    return tool_specs(request.tools) + mcp


def tool_call(call_id: str, arguments: ToolArgs) -> ToolCall:
    """A call of the tool `arguments` belong to (the offline model builds its calls this way)."""
    name = next(name for name, model in TOOL_ARGS.items() if isinstance(arguments, model))
    return ToolCall(id=call_id, name=name, arguments=arguments.model_dump())


def parse_arguments(call: ToolCall) -> ToolArgs | str:
    """The call's arguments as the tool's model, or the message that tells the model what was wrong."""
    if call.arguments_error:
        return f"invalid arguments for {call.name}: {call.arguments_error}"
    try:
        model = TOOL_ARGS[ToolName(call.name)]
    except ValueError:
        return f"unknown tool {call.name!r}; available: {', '.join(TOOL_ARGS)}"
    try:
        return model.model_validate(call.arguments)
    except ValidationError as exc:
        return f"invalid arguments for {call.name}: {validation_problems(exc)}"


def validation_problems(exc: ValidationError) -> str:
    """`field: reason; field: reason` (without the submitted values, which may be large)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())


def search_result_text(found: RagResult) -> str:
    """What the model reads as the result of `search_knowledge`."""
    if not found.results:
        return "no matching snippets in the knowledge base"
    hits = [
        {"source": h.source, "score": round(h.score, 4), "content": h.content[:RAG_SNIPPET_CHARS]}
        for h in found.results
    ]
    return json.dumps(hits, indent=1)
