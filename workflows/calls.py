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
from temporalio.exceptions import ActivityError, ApplicationError, TemporalError, is_cancelled_exception
from temporalio.workflow import ActivityConfig, LocalActivityConfig

from workflows.models import (
    LINT_ACTIVITY,
    LLM_ACTIVITY,
    MCP_CALL_TOOL_ACTIVITY,
    MCP_LIST_TOOLS_ACTIVITY,
    RAG_ACTIVITY,
    RUN_TESTS_ACTIVITY,
    LintResult,
    LlmResponse,
    McpCallResult,
    McpToolList,
    RagResult,
    TestReport,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Activity(Generic[T]):
    """`local`: the step is short and read-only, so it is first run as a local activity (in the worker that runs
    the workflow task, recorded as a marker: no schedule, dispatch or completion on the server, no workflow task of
    its own) with these bounds; when that one fails or is slow it runs as the regular activity (`config`)."""

    name: str
    result_type: type[T]
    config: ActivityConfig
    local: LocalActivityConfig | None = None


# Patch: the short steps (`local` above) run as local activities first; tasks started before replay their
# regular activities (docs/performance.md).
LOCAL_STEPS_PATCH = "local-steps"
# A local try gets one attempt: any failure or timeout goes to the regular activity, which has Temporal's retries.
_ONE_TRY = RetryPolicy(maximum_attempts=1)


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
    # warm pool: ~10-150 ms; 10 s covers a queue behind the pool's children and a cold start's 2-3 s
    LocalActivityConfig(start_to_close_timeout=timedelta(seconds=10), retry_policy=_ONE_TRY),
)
RAG = Activity(
    RAG_ACTIVITY,
    RagResult,
    ActivityConfig(
        start_to_close_timeout=timedelta(seconds=15),
        schedule_to_close_timeout=timedelta(seconds=45),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=3),
    ),
    LocalActivityConfig(start_to_close_timeout=timedelta(seconds=5), retry_policy=_ONE_TRY),  # a query: 3-13 ms
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

MCP_LIST = Activity(
    MCP_LIST_TOOLS_ACTIVITY,
    McpToolList,
    ActivityConfig(
        start_to_close_timeout=timedelta(seconds=60),  # the servers' start (a stdio server's spawn) and their lists
        schedule_to_close_timeout=timedelta(minutes=3),
        heartbeat_timeout=timedelta(seconds=15),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
    ),
)
_MCP_CALL_CONFIG = ActivityConfig(
    start_to_close_timeout=timedelta(minutes=11),  # above any server's timeout_seconds (at most 600 s)
    heartbeat_timeout=timedelta(seconds=15),  # a crashed worker's call is known after this
)
# A read-only or idempotent tool (its annotations say so) is retried after a failure: a dead server is restarted
# and the call made again. Any other tool is called once: a call that may have changed something is never
# repeated by Temporal (the model is told it failed, and decides).
MCP_CALL = Activity(
    MCP_CALL_TOOL_ACTIVITY,
    McpCallResult,
    ActivityConfig(
        **_MCP_CALL_CONFIG,
        schedule_to_close_timeout=timedelta(minutes=30),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=3),
    ),
)
MCP_CALL_ONCE = Activity(
    MCP_CALL_TOOL_ACTIVITY,
    McpCallResult,
    ActivityConfig(**_MCP_CALL_CONFIG, retry_policy=RetryPolicy(maximum_attempts=1)),
)


class TaskFailed(Exception):
    """An agent could not finish; the task ends `failed`."""


class ActivityFailed(Exception):
    """An activity failed for good (its retries are spent); the message is the activity's own error, `type` its
    ApplicationError type (e.g. `BudgetExceeded`)."""

    def __init__(self, message: str, type: str | None = None, details: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.type = type
        self.details = details  # the ApplicationError's details (e.g. a BudgetExceeded call's bound)


async def execute(activity: Activity[T], arg: Any, summary: str) -> T:
    """Run an activity (from workflow code); cancellation passes through, a final failure is ActivityFailed."""
    if activity.local is not None and workflow.patched(LOCAL_STEPS_PATCH):
        local: LocalActivityConfig = {**activity.local, "summary": summary}
        try:
            return await workflow.execute_local_activity(activity.name, arg, result_type=activity.result_type, **local)
        except TemporalError as exc:  # its last failure comes bare (ApplicationError, TimeoutError), not wrapped
            if is_cancelled_exception(exc):
                raise
            workflow.logger.info("local %s failed (%s); running it as a regular activity", activity.name, exc)
    config: ActivityConfig = {**activity.config, "summary": summary}
    try:
        return await workflow.execute_activity(activity.name, arg, result_type=activity.result_type, **config)
    except ActivityError as exc:
        if is_cancelled_exception(exc):
            raise
        root = root_cause(exc)
        kind, details = (root.type, tuple(root.details)) if isinstance(root, ApplicationError) else (None, ())
        raise ActivityFailed(str(root) or type(root).__name__, kind, details) from exc


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: the activity's own error rather than Temporal's wrappers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
