"""System prompts, user-message builders and answer parsing for the planner and the two agents (pure functions)."""

from __future__ import annotations

import re

from workflows.models import CodingTaskInput

_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

PLANNER_SYSTEM = (
    "You are the planner of a small software team. Turn the user's coding task into a short numbered plan "
    "(3 to 6 steps) for a code-generation agent and a documentation agent. Answer with the plan only."
)

CODE_SYSTEM = (
    "You are a senior Python engineer. Write the code the task asks for. You have two tools: "
    "`search_knowledge` finds relevant snippets in the team's knowledge base, and `lint` runs pylint on a draft "
    "(the code is never executed). Search when it helps, lint your draft and fix what matters. "
    "Finish with exactly one ```python fenced block holding the complete module, followed by a short explanation."
)

DOC_SYSTEM = (
    "You are a technical writer. Write concise Markdown documentation for the given code: purpose, usage "
    "example, parameters, return values, errors and limits. You may use `search_knowledge` for project context "
    "and `lint` to check code examples. Answer with the documentation only."
)


def _section(title: str, body: str | None) -> str:
    return f"## {title}\n{body.strip()}\n\n" if body and body.strip() else ""


def code_context(task: CodingTaskInput) -> str | None:
    """The task's code context as the planner and the code agent see it: `code_context`, then each of `files`
    under its path, in a fence longer than any run of backticks in it (so a Markdown file cannot close it early)."""
    parts = [task.code_context.strip()] if task.code_context and task.code_context.strip() else []
    for file in task.files or []:
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", file.content)), default=0))
        content = file.content.rstrip("\n")
        parts.append(f"### File: {file.path}\n{fence}\n{content}\n{fence}")
    return "\n\n".join(parts) or None


def planner_prompt(task: str, code_context: str | None) -> str:
    return _section("Task", task) + _section("Existing code", code_context)


def code_prompt(
    task: str,
    plan: str | None,
    code_context: str | None,
    previous_code: str | None = None,
    revision_comment: str | None = None,
) -> str:
    return (
        _section("Task", task)
        + _section("Plan", plan)
        + _section("Existing code", code_context)
        + _section("Previous version", previous_code)
        + _section("Reviewer feedback to address", revision_comment)
    )


def doc_prompt(task: str, plan: str | None, code: str) -> str:
    return _section("Task", task) + _section("Plan", plan) + _section("Code to document", f"```python\n{code}\n```")


def split_code_answer(answer: str) -> tuple[str, str]:
    """Split a code agent's final answer into (code, explanation): the longest fenced block is the code."""
    blocks = _CODE_BLOCK.findall(answer)
    if not blocks:
        return answer.strip(), ""
    code = max(blocks, key=len)
    explanation = _CODE_BLOCK.sub("", answer).strip()
    return code.strip() + "\n", explanation
