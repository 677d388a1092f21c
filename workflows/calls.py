"""How the workflow calls activities: one typed entry per activity (name, result type and the SDK's own
`ActivityConfig` with its timeouts and retry policy), and one helper that runs it and reports a final failure
in the activity's own words.

Temporal owns every retry: the provider SDKs' own retries are off (`max_retries=0` in activities/providers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityConfig

from workflows.models import (
    LINT_ACTIVITY,
    LLM_ACTIVITY,
    RAG_ACTIVITY,
    RUN_TESTS_ACTIVITY,
    LintResult,
    LlmResponse,
    RagResult,
    TestReport,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Activity(Generic[T]):
    name: str
    result_type: type[T]
    config: ActivityConfig


LLM = Activity(
    LLM_ACTIVITY,
    LlmResponse,
    ActivityConfig(
        start_to_close_timeout=timedelta(minutes=3),
        schedule_to_close_timeout=timedelta(minutes=15),
        heartbeat_timeout=timedelta(seconds=15),  # a crashed worker's call is retried after this, not after 3 min
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=60),
            maximum_attempts=6,
        ),
    ),
)
LINT = Activity(
    LINT_ACTIVITY,
    LintResult,
    ActivityConfig(
        start_to_close_timeout=timedelta(seconds=60),
        schedule_to_close_timeout=timedelta(minutes=5),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
    ),
)
RAG = Activity(
    RAG_ACTIVITY,
    RagResult,
    ActivityConfig(
        start_to_close_timeout=timedelta(seconds=15),
        schedule_to_close_timeout=timedelta(seconds=45),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=3),
    ),
)
# The sandbox's own limits stop a run (wall time at most 600 s, SandboxLimits); a test failure or a sandbox that
# cannot be set up is a report (`outcome`), not an error. A retry is for a lost worker (no heartbeat for 30 s:
# the run is re-run elsewhere from the request alone) or a transient failure to start it; a bad request is not.
RUN_TESTS = Activity(
    RUN_TESTS_ACTIVITY,
    TestReport,
    ActivityConfig(
        start_to_close_timeout=timedelta(minutes=11),
        schedule_to_close_timeout=timedelta(minutes=30),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_attempts=3,
            non_retryable_error_types=["InvalidRequest"],
        ),
    ),
)


class TaskFailed(Exception):
    """An agent could not finish; the task ends `failed`."""


class ActivityFailed(Exception):
    """An activity failed for good (its retries are spent); the message is the activity's own error, `type` its
    ApplicationError type (e.g. `BudgetExceeded`)."""

    def __init__(self, message: str, type: str | None = None) -> None:
        super().__init__(message)
        self.type = type


async def execute(activity: Activity[T], arg: Any, summary: str) -> T:
    """Run an activity (from workflow code); cancellation passes through, a final failure is ActivityFailed."""
    config: ActivityConfig = {**activity.config, "summary": summary}
    try:
        return await workflow.execute_activity(activity.name, arg, result_type=activity.result_type, **config)
    except ActivityError as exc:
        if is_cancelled_exception(exc):
            raise
        root = root_cause(exc)
        kind = root.type if isinstance(root, ApplicationError) else None
        raise ActivityFailed(str(root) or type(root).__name__, kind) from exc


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: the activity's own error rather than Temporal's wrappers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
