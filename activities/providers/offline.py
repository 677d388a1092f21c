"""The built-in offline model: deterministic, keyless, and honest about being a placeholder.

It lets the whole pipeline run on a fresh machine: it plans, calls both tools (the knowledge base and
pylint, for real) and answers with clearly labelled placeholder code and documentation.
"""

from __future__ import annotations

import ast
import json
import re
from typing import ClassVar

from activities.config import WorkerSettings
from activities.providers.base import ChunkSink, ignore_chunk
from workflows.models import AgentRole, ChatMessage, LlmRequest, LlmResponse, Provider, ToolCall
from workflows.tools import LintArgs, SearchKnowledgeArgs, tool_call

OFFLINE_MODEL = Provider.OFFLINE.value
LABEL = "OFFLINE PLACEHOLDER"
_STOPWORDS = {
    "a", "an", "the", "write", "function", "functions", "that", "which", "with", "and", "or", "to", "of",
    "for", "in", "on", "docs", "doc", "documentation", "python", "code", "please", "create", "implement",
    "make", "add", "it", "is", "from", "into", "by", "as", "be", "some", "small",
}  # fmt: skip


def _section(prompt: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", prompt, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def _function_name(task: str) -> str:
    words = [w for w in re.findall(r"[a-z]+", task.lower()) if w not in _STOPWORDS]
    name = "_".join(words[:4]) or "solve_task"
    return name if name.isidentifier() else "solve_task"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _placeholder_code(task: str, feedback: str) -> str:
    summary = " ".join(task.split())[:150].replace('"""', "'''").replace("\\", "/")
    note = " ".join(feedback.split())[:150].replace('"""', "'''").replace("\\", "/")
    name = _function_name(task)
    revision = f"\nReviewer feedback noted: {note}\n" if note else ""
    return (
        f'"""{LABEL}: written by the built-in offline model, not by an LLM.\n\n'
        f"Task: {summary}\n{revision}"
        "Set OPENAI_API_KEY (or CODE_MODEL) for a real implementation.\n"
        '"""\n\n\n'
        f"def {name}() -> None:\n"
        f'    """Placeholder for the task above.\n\n'
        "    Raises:\n"
        "        NotImplementedError: always; the offline model writes no real code.\n"
        '    """\n'
        '    raise NotImplementedError("offline placeholder: configure a real model to implement this task")\n'
    )


def _consulted_sources(messages: list[ChatMessage]) -> list[str]:
    sources: list[str] = []
    for message in messages:
        if message.role != "tool" or message.is_error:
            continue
        try:
            hits = json.loads(message.content)
        except ValueError:
            continue
        if isinstance(hits, list):
            sources += [str(h.get("source")) for h in hits if isinstance(h, dict) and h.get("source")]
    return sources


def _documentation(code: str, sources: list[str]) -> str:
    lines = [f"# Documentation ({LABEL})", "", "> Written by the built-in offline model. Set ANTHROPIC_API_KEY "
             "(or DOC_MODEL) for real documentation.", "", "## API", ""]  # fmt: skip
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        tree = None
        lines.append(f"The code does not parse ({exc.msg}, line {exc.lineno}).")
    if tree is not None:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = (ast.get_docstring(node) or "no docstring").splitlines()[0]
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                lines.append(f"- {kind} `{node.name}` (line {node.lineno}): {doc}")
    lines += ["", "## Knowledge base", ""]
    lines.append(
        "Consulted: " + ", ".join(f"`{s}`" for s in sources[:5]) if sources else "No matching snippets were found."
    )
    return "\n".join(lines) + "\n"


def reply(request: LlmRequest) -> LlmResponse:
    """One deterministic chat turn for `request`."""
    prompt = request.messages[0].content if request.messages else ""
    task = _section(prompt, "Task") or prompt
    used_tools = any(m.role == "tool" for m in request.messages)
    tool_calls: list[ToolCall] = []
    content = ""
    if request.role == AgentRole.PLANNER:
        content = (
            f"{LABEL} plan (built-in offline model):\n"
            f"1. Understand the task: {' '.join(task.split())[:200]}\n"
            "2. Search the knowledge base for related code.\n"
            "3. Write the code and check it with pylint.\n"
            "4. Document the result."
        )
    elif request.role == AgentRole.CODE_GENERATION:
        draft = _placeholder_code(task, _section(prompt, "Reviewer feedback to address"))
        if request.tools and not used_tools:
            tool_calls = [
                tool_call("offline-search-1", SearchKnowledgeArgs(query=task[:200] or "task")),
                tool_call("offline-lint-1", LintArgs(code=draft)),
            ]
        else:
            content = f"```python\n{draft}```\n\n{LABEL}: the built-in offline model wrote this stub."
    else:
        code_match = re.search(r"```python\n(.*?)```", prompt, re.DOTALL)
        code = code_match.group(1) if code_match else ""
        if request.tools and not used_tools:
            tool_calls = [tool_call("offline-search-1", SearchKnowledgeArgs(query=task[:200] or "task"))]
        else:
            content = _documentation(code, _consulted_sources(request.messages))
    text_in = request.system + "".join(m.content for m in request.messages)
    return LlmResponse(
        model=OFFLINE_MODEL,
        content=content,
        tool_calls=tool_calls,
        input_tokens=_tokens(text_in),
        output_tokens=_tokens(content + "".join(json.dumps(c.arguments) for c in tool_calls)),
    )


class OfflineProvider:
    """The built-in model as a provider: no key, no network."""

    key_env: ClassVar[str | None] = None

    def __init__(self, settings: WorkerSettings) -> None:
        pass

    @staticmethod
    def api_key(settings: WorkerSettings) -> str | None:
        return None

    async def chat(self, model: str, request: LlmRequest, on_chunk: ChunkSink = ignore_chunk) -> LlmResponse:
        response = reply(request)
        on_chunk(response.content)  # the whole text as one chunk: watchers see it as a real model's would
        return response

    async def aclose(self) -> None:
        pass
