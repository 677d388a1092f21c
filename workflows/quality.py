"""The quality gate's judgement: does linted code meet the bar, and what the code agent is told when it does not.

Pure functions of a `LintResult`, so unit tests check them without a server.
"""

from __future__ import annotations

from workflows.models import LintResult, LintRound

ERROR_TYPES = frozenset({"error", "fatal"})  # pylint's E and F messages: undefined names, syntax, imports
MAX_MESSAGES_SHOWN = 20


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
