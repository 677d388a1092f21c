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

# Added to CODE_SYSTEM when the test gate is on (without it the code agent's prompt is as it was).
TESTS_SYSTEM = (
    " A third tool, `run_tests`, runs pytest on a draft in a sandbox and reports each failing test: use it before "
    "you answer. Your answer is tested the same way, and failing tests come back to you to fix."
)

DOC_SYSTEM = (
    "You are a technical writer. Write concise Markdown documentation for the given code: purpose, usage "
    "example, parameters, return values, errors and limits. You may use `search_knowledge` for project context "
    "and `lint` to check code examples. Answer with the documentation only."
)


def code_system(tests: bool) -> str:
    """The code agent's system prompt; with the test gate on it also names `run_tests`."""
    return CODE_SYSTEM + TESTS_SYSTEM if tests else CODE_SYSTEM


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


def module_name(path: str) -> str:
    """The import name of a module file: `pkg/solution.py` -> `pkg.solution`."""
    return path.removesuffix(".py").replace("/", ".")


def tests_section(tests: str | None, module: str) -> str:
    """What the code agent is told about the tests: the user's (which judge its code), or that it writes its own."""
    name = module_name(module)
    if tests is not None:
        return _section(
            f"Tests your code must pass (pytest; they import `{name}`, which is your module)",
            f"```python\n{tests.rstrip()}\n```",
        )
    return _section(
        "Tests",
        f"After the module, add a second ```python block of pytest tests for it (`from {name} import ...`): "
        "they are run on your code, and failures come back to you.",
    )


def planner_prompt(task: str, code_context: str | None) -> str:
    return _section("Task", task) + _section("Existing code", code_context)


def code_prompt(
    task: str,
    plan: str | None,
    code_context: str | None,
    previous_code: str | None = None,
    revision_comment: str | None = None,
    tests: str = "",
) -> str:
    """`tests`: the `tests_section` when the test gate is on."""
    return (
        _section("Task", task)
        + _section("Plan", plan)
        + _section("Existing code", code_context)
        + tests
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


def _is_tests(block: str, module: str) -> bool:
    name = re.escape(module_name(module))
    imports = re.search(rf"^\s*(from\s+{name}\s+import|import\s+{name}\b)", block, re.MULTILINE)
    return bool(imports) and re.search(r"^\s*def test_", block, re.MULTILINE) is not None


def split_tested_answer(answer: str, module: str) -> tuple[str, str | None, str]:
    """(code, tests, explanation) of an answer that may hold tests: the fenced blocks that import `module` and
    define `test_` functions are the tests (joined), the longest other block is the code."""
    blocks = _CODE_BLOCK.findall(answer)
    tests = [block.strip() for block in blocks if _is_tests(block, module)]
    if not tests or len(tests) == len(blocks):
        code, explanation = split_code_answer(answer)
        return code, None, explanation
    code = max((block for block in blocks if not _is_tests(block, module)), key=len)
    explanation = _CODE_BLOCK.sub("", answer).strip()
    return code.strip() + "\n", "\n\n\n".join(tests) + "\n", explanation
