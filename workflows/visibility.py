"""What Temporal shows about a task without querying it: its search attributes and the Web UI's details line.

Both are derived from the task state. Sandbox-safe and server-free: `SearchAttributeSync.updates` returns the
upserts for the workflow to send, so unit tests check them without a server.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate, TypedSearchAttributes

from workflows.models import (
    SA_AGENT,
    SA_CODE_MODEL,
    SA_COST_USD,
    SA_DOC_MODEL,
    SA_FEEDBACK_RATING,
    SA_LINT_GATE,
    SA_LINT_SCORE,
    SA_OWNER,
    SA_TASK_STATUS,
    SA_TEST_GATE,
    SA_TOTAL_TOKENS,
    AgentRole,
    TaskState,
)
from workflows.usage import total_tokens

# Progress figures not worth an upsert of their own: they go along with the next change of phase.
LAZY = frozenset({SA_TOTAL_TOKENS.name, SA_COST_USD.name, SA_CODE_MODEL.name, SA_DOC_MODEL.name})


def search_attribute_values(state: TaskState) -> dict[SearchAttributeKey[Any], Any]:
    """The value each search attribute derived from the state should have now (None: unset)."""
    code = state.results.code_generation
    lint_score = code.lint.score if code is not None and code.lint is not None else None
    return {
        SA_TASK_STATUS: state.task_status.value,
        SA_AGENT: state.current_agent.value if state.current_agent else None,
        SA_CODE_MODEL: state.models.get(AgentRole.CODE_GENERATION),
        SA_DOC_MODEL: state.models.get(AgentRole.DOCUMENTATION),
        SA_LINT_SCORE: float(lint_score) if lint_score is not None else None,
        SA_FEEDBACK_RATING: state.feedback[-1].rating if state.feedback else None,
        SA_TOTAL_TOKENS: total_tokens(state),
        SA_COST_USD: state.cost_usd,
        SA_LINT_GATE: code.lint_gate.value if code is not None and code.lint_gate is not None else None,
        SA_TEST_GATE: code.test_gate.value if code is not None and code.test_gate is not None else None,
    }


class SearchAttributeSync:
    """Keeps the search attributes in step with the state, with as few upserts as possible.

    Each upsert is a history event and a visibility write, so the workflow asks for updates only before it waits
    (at most one upsert per workflow task), and only values that changed are sent. A task that was not started
    with `TaskStatus` (see `workflows.models.start_search_attributes`) keeps none.
    """

    def __init__(self, started_with: TypedSearchAttributes, owner: str | None = None) -> None:
        self.enabled = started_with.get(SA_TASK_STATUS) is not None
        self._sent: dict[str, Any] = {pair.key.name: pair.value for pair in started_with}
        # the memo's tenant (the CLI's `--memo owner=...`); the gateway also sets `Owner` at start
        self._owner = owner[:255] if owner else started_with.get(SA_OWNER)

    def updates(self, state: TaskState) -> list[SearchAttributeUpdate[Any]]:
        if not self.enabled:
            return []
        values = {**search_attribute_values(state), SA_OWNER: self._owner}
        changed = {key: value for key, value in values.items() if self._sent.get(key.name) != value}
        if all(key.name in LAZY for key in changed):  # nothing changed, or only what can wait
            return []
        self._sent.update((key.name, value) for key, value in changed.items())
        return [key.value_unset() if value is None else key.value_set(value) for key, value in changed.items()]


def details_line(state: TaskState, doing: str | None = None) -> str:
    """The one-line summary the Web UI shows as the workflow's current details."""
    parts = [f"**{state.task_status.value}**"]
    if doing or state.current_agent:
        parts.append(doing or f"agent {state.current_agent}")
    code = state.results.code_generation
    if code is not None and code.lint is not None and code.lint.score is not None:
        parts.append(f"lint {code.lint.score}")
    if code is not None and code.tests is not None:
        parts.append(f"tests {code.tests.passed} passed, {code.tests.failed + code.tests.errors} failed")
    if state.feedback:
        parts.append(f"rating {state.feedback[-1].rating}")
    parts.append(f"{total_tokens(state)} tokens")
    parts.append("cost unknown" if state.cost_usd is None else f"${state.cost_usd:.4f}")
    return " · ".join(parts)
