"""The quality gate's judgement: does linted code meet the bar, and what the code agent is told when it does not.

Pure functions of a `LintResult`, so unit tests check them without a server; and what the code agent's loop
carries between its rounds (`Draft`, `Gates`), defined here rather than in the workflow's module, which the
sandbox executes again for every run (two dataclasses cost about 2 ms of CPU per task there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.models import LintGate, LintResult, LintRound, TestReport, TestRound

ERROR_TYPES = frozenset({"error", "fatal"})  # pylint's E and F messages: undefined names, syntax, imports
MAX_MESSAGES_SHOWN = 20


@dataclass
class Draft:
    """The code agent's answer with pylint's verdict on it and its tests' report (None: no run)."""

    code: str
    explanation: str
    model: str
    lint: LintResult
    steps: int  # the step of the model call that answered: the agent run's steps so far, its fix rounds included
    report: TestReport | None = None


@dataclass
class Gates:
    """How the quality gate ended (None: code from before the gate) and each gate's rounds."""

    lint: LintGate | None = None
    lint_rounds: list[LintRound] = field(default_factory=list)
    test_rounds: list[TestRound] = field(default_factory=list)


def errors(lint: LintResult) -> int:
    return sum(1 for m in lint.messages if m.type in ERROR_TYPES or m.message_id[:1] in ("E", "F"))


def passes(lint: LintResult, bar: float) -> bool:
    """At or above the bar and no error-class message; code pylint could not judge does not pass."""
    return lint.error is None and lint.score is not None and lint.score >= bar and errors(lint) == 0


def needs_fix(lint: LintResult, bar: float) -> bool:
    """Below the bar with a verdict to act on (code pylint could not judge is not sent back)."""
    return not passes(lint, bar) and lint.error is None


def fix_prompt(lint: LintResult, bar: float) -> str:
    """The new user turn that sends pylint's verdict back to the code agent."""
    messages = sorted(lint.messages, key=lambda m: (m.message_id[:1] not in ("E", "F"), m.line))
    shown = [f"{m.message_id} {m.symbol} {m.message} (line {m.line})" for m in messages[:MAX_MESSAGES_SHOWN]]
    more = len(messages) - len(shown)
    verdict = f"pylint scored {lint.score}/10" if lint.score is not None else "pylint could not score the module"
    return (
        f"{verdict} (the bar is {bar:g}, with no error messages):\n"
        + "\n".join(shown)
        + (f"\n… and {more} more" if more > 0 else "")
        + "\nFix these and answer with the complete module."
    )


def lint_round(number: int, before: LintResult, after: LintResult) -> LintRound:
    return LintRound(
        round=number,
        score_before=before.score,
        score_after=after.score,
        errors_before=errors(before),
        errors_after=errors(after),
    )


def verdict(lint: LintResult, bar: float | None, rounds: int) -> tuple[LintGate, str | None]:
    """How the quality gate ended for the final code, and the warning it raises (None: none)."""
    if bar is None:
        return LintGate.OFF, None
    if passes(lint, bar):
        return LintGate.PASSED, None
    found = lint.error or f"pylint {lint.score}/10, {errors(lint)} error(s)"
    return LintGate.FAILED, f"quality gate failed after {rounds} fix round(s) (bar {bar:g}): {found}"
