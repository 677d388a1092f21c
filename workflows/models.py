"""Inputs, outputs and names shared by the workflow, the activities, the worker and the gateway.

This module has no side effects and imports nothing that touches the network, the disk or the clock, so the
workflow sandbox can pass it through. Every workflow, activity, signal and query takes one of these models, so
fields can be added later without breaking running workflows.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.workflow_streams import WorkflowStreamState
from temporalio.exceptions import ApplicationError

from workflows.strict import NOT_BLANK, NotBlankStr, SchemaStrict

TASK_QUEUE = "coding-tasks"
WORKFLOW_TYPE = "CodingTask"
FEEDBACK_SIGNAL = "feedback"
STATUS_QUERY = "status"
EVENTS_QUERY = "events"
EVENTS_TOPIC = "events"  # the workflow stream's topic of TaskEvents (temporalio.contrib.workflow_streams)
RAISE_BUDGET_UPDATE = "raise_budget"
LLM_ACTIVITY = "llm_chat"
LINT_ACTIVITY = "lint"
RAG_ACTIVITY = "search_knowledge"
APPROVE_TOOL_UPDATE = "approve_tool"
MCP_LIST_TOOLS_ACTIVITY = "mcp_list_tools"
MCP_CALL_TOOL_ACTIVITY = "mcp_call_tool"
RUN_TESTS_ACTIVITY = "run_tests"  # runs a candidate module's tests with pytest in the sandbox (activities/sandbox)
# The workflow stream's topic the llm_chat activity publishes its `llm_delta` events to (TaskEvent-shaped, id 0:
# a subscriber numbers them by their stream offset, which is one sequence over both topics); a reader that wants
# only the steps leaves this topic out.
DELTA_TOPIC = "llm_delta"
STREAM_TOPICS = [EVENTS_TOPIC, DELTA_TOPIC]  # what the gateway's SSE reads: ids are the shared offset + 1
# Memo key: until when (ISO time) someone reads the task's DELTA_TOPIC (workflows/watch.py). A model call started
# unwatched reads it with `describe()` and publishes its text once it is later than now (activities/deltas.py).
WATCHED_UNTIL_MEMO = "watched_until"

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)

MAX_TASK_DESCRIPTION = 20_000
MAX_CODE_CONTEXT = 2_000_000  # characters
# Without the payload store (PAYLOAD_STORE) every model call's input carries the context inline, and Temporal refuses
# a payload over 2 MB (and warns above 512 KB): the gateway accepts at most this much code_context then.
MAX_INLINE_CODE_CONTEXT = 400_000
MAX_FILES = 1_000  # files of one task's code context
MAX_FILE_PATH = 300  # characters
# A relative path: parts separated by '/', none empty, none made only of dots ('.', '..'), no '\' or control
# character; published as the schema's pattern, and checked with a message per rule (`_check_path`).
_PATH_PART = r"[^/\\\x00-\x1f]*[^./\\\x00-\x1f][^/\\\x00-\x1f]*"
FILE_PATH_PATTERN = rf"^{_PATH_PART}(/{_PATH_PART})*$"
MAX_COMMENT = 4_000
MAX_BUDGET_USD = 10_000.0  # per task: anything above is a typo, not a budget
MAX_BUDGET_TOKENS = 1_000_000_000
MAX_TESTS = 200_000  # characters of the `tests` input (pytest source)
MAX_MCP_SELECTORS = 50
# A server's name: letters and digits, single '-' or '_' between them (never '__', which joins server and tool in
# the name a model sees: `server__tool`).
_MCP_SERVER = r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*"
MCP_SERVER_PATTERN = rf"^{_MCP_SERVER}$"
McpToolSelector = Annotated[
    str, Field(min_length=1, max_length=200, pattern=rf"^{_MCP_SERVER}(\.[^\s]+)?$", examples=["git", "git.git_log"])
]
TESTS_FILE = "test_solution.py"  # where the sandbox writes the tests, beside the candidate module


class TaskStatus(StrEnum):
    PLANNING = "planning"
    RUNNING = "running"
    AWAITING_BUDGET = "awaiting_budget"  # the next model call could exceed the budget: waits for `raise_budget`
    AWAITING_APPROVAL = "awaiting_approval"  # an MCP tool call waits for `approve_tool`
    AWAITING_FEEDBACK = "awaiting_feedback"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
# A stream of progress ends when the task stops for the user: it waits for feedback, or it ended.
STREAM_END_STATUSES = TERMINAL_STATUSES | {TaskStatus.AWAITING_FEEDBACK}


ACCEPTED_RATING = 3  # a rating this high completes the task; a lower one with a comment asks for a revision


class TaskEnded(ApplicationError):
    """What an update's validator raises when the task has ended (a client answers 409, not 422): the rejection's
    `type` is this class's name."""

    def __init__(self, task_status: TaskStatus) -> None:
        super().__init__(f"the task has ended ({task_status})", type=TaskEnded.__name__, non_retryable=True)


class AgentRole(StrEnum):
    PLANNER = "planner"
    CODE_GENERATION = "code_generation"
    DOCUMENTATION = "documentation"


class ToolName(StrEnum):
    LINT = "lint"
    SEARCH_KNOWLEDGE = "search_knowledge"
    RUN_TESTS = "run_tests"


class EventType(StrEnum):
    """The `type` of a progress event (`events` query, the gateway's SSE `event:` field)."""

    STARTED = "started"
    RESUMED = "resumed"  # a continued-as-new run picked up the state
    STATUS = "status"  # task_status changed; data.task_status
    PLAN = "plan"
    ROUTE = "route"  # the supervisor chose an agent
    LLM_CALL = "llm_call"
    TOOL_CALL = "tool_call"
    LINT = "lint"
    CODE_READY = "code_ready"
    DOCS_READY = "docs_ready"
    WARNING = "warning"
    FEEDBACK = "feedback"
    FEEDBACK_INVALID = "feedback_invalid"
    FEEDBACK_IGNORED = "feedback_ignored"
    FEEDBACK_WINDOW_CLOSED = "feedback_window_closed"
    REVISION = "revision"
    REVISION_LIMIT = "revision_limit"
    CONTINUE_AS_NEW = "continue_as_new"
    LINT_GATE = "lint_gate"  # one round of the quality gate: data.round, score_before/after, errors
    BUDGET_EXHAUSTED = "budget_exhausted"
    BUDGET_RAISED = "budget_raised"
    LLM_DELTA = "llm_delta"  # model text as it is written: data.role, step, attempt, text (on the stream only)
    TESTS = "tests"  # one run of the tests in the sandbox: data = the TestReport's counts
    TEST_GATE = "test_gate"  # one round of the test gate: data = TestRound
    APPROVAL_REQUESTED = "approval_requested"  # an MCP tool call waits: data.call_id, tool, server, arguments
    APPROVAL_DECIDED = "approval_decided"  # data.call_id, tool, approved, reason


class LintGate(StrEnum):
    """How the quality gate ended for the current code (`LintGate` search attribute)."""

    PASSED = "passed"
    FAILED = "failed"  # below the bar after the fix rounds, or pylint could not judge it
    OFF = "off"  # min_lint_score is null


class TestGateMode(StrEnum):
    """Input `test_gate`: what failing tests do. `required` (the default when `tests` are given): failures go back
    to the code agent for at most `max_fix_rounds` rounds, and still failing the task goes on with a warning and
    `TestGate=failed`; `advisory`: the same rounds, but the result is reported, never a warning; `off`: no run."""

    __test__ = False

    OFF = "off"
    ADVISORY = "advisory"
    REQUIRED = "required"


class TestGate(StrEnum):
    """How the test gate ended for the current code (`TestGate` search attribute)."""

    __test__ = False

    PASSED = "passed"
    FAILED = "failed"  # still failing after the fix rounds
    UNAVAILABLE = "unavailable"  # the sandbox could not be set up: the code was never run
    OFF = "off"


class Provider(StrEnum):
    """Model providers; a model id is `provider:model`, or `offline` (the built-in model, no key)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OFFLINE = "offline"


_REMOTE_PROVIDERS = "|".join(p.value for p in Provider if p is not Provider.OFFLINE)
MODEL_PATTERN = rf"^(offline|({_REMOTE_PROVIDERS}):[A-Za-z0-9._:/-]{{1,100}})$"
ModelId = Annotated[str, Field(pattern=MODEL_PATTERN, examples=["openai:gpt-4o", "offline"])]


def parse_model_id(model: str) -> tuple[Provider, str]:
    """`"openai:gpt-4o"` -> (Provider.OPENAI, "gpt-4o"); `"offline"` -> (Provider.OFFLINE, "offline").

    The one place a model id is taken apart; ids are validated against MODEL_PATTERN where they enter.
    """
    provider, _, name = model.partition(":")
    return Provider(provider), name or provider


class _Strict(SchemaStrict):
    """What callers send (the workflow input, the signal, the update): exactly what its JSON Schema allows."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- workflow input


def _check_path(path: str) -> str:
    if path.startswith("/"):
        raise ValueError("must be relative (no leading '/')")
    if "\\" in path:
        raise ValueError("must use '/' between its parts, not '\\'")
    if any(ord(c) < 0x20 for c in path):
        raise ValueError("must not hold control characters")
    for part in path.split("/"):
        if not part:
            raise ValueError("must not have an empty part ('//' or a trailing '/')")
        if not part.strip("."):
            raise ValueError(f"must not have a {part!r} part")
    return path


FilePath = Annotated[
    str,
    Field(min_length=1, max_length=MAX_FILE_PATH, json_schema_extra={"pattern": FILE_PATH_PATTERN}),
    AfterValidator(_check_path),
]
_MODULE_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\.py$"


def _check_module(path: str) -> str:
    if not re.fullmatch(_MODULE_PATTERN, path):
        raise ValueError("must be an importable Python file: identifiers between '/', ending '.py' (e.g. solution.py)")
    return path


# The candidate module's path: a FilePath that tests can import (`pkg/solution.py` is `import pkg.solution`).
ModuleFile = Annotated[FilePath, Field(json_schema_extra={"pattern": _MODULE_PATTERN}), AfterValidator(_check_module)]


class ContextFile(_Strict):
    """One file of a task's code context; the agents see it under its path."""

    path: FilePath = Field(description="relative, '/' between parts, no '.' or '..' part, e.g. src/app/main.py")
    content: str = Field(max_length=MAX_CODE_CONTEXT)


def _context_size(code_context: str | None, files: list[ContextFile] | None) -> int:
    return len(code_context or "") + sum(len(file.content) for file in files or [])


class CodingTaskInput(_Strict):
    """The one input of the `CodingTask` workflow. Only model *names* travel here; API keys never do."""

    task_description: NotBlankStr = Field(min_length=1, max_length=MAX_TASK_DESCRIPTION)
    code_context: str | None = Field(default=None, max_length=MAX_CODE_CONTEXT)
    files: list[ContextFile] | None = Field(
        default=None,
        max_length=MAX_FILES,
        description="the code context as files, each path once; with code_context at most "
        f"{MAX_CODE_CONTEXT:,} characters of content together (JSON Schema can say neither: a path given twice, "
        "or more content, is refused with 422 naming `files`)",
    )
    planner_model: ModelId | None = Field(
        default=None, description="provider:model; default PLANNER_MODEL of the worker"
    )
    code_model: ModelId | None = Field(default=None, description="default CODE_MODEL")
    doc_model: ModelId | None = Field(default=None, description="default DOC_MODEL")
    max_agent_steps: int = Field(default=6, ge=1, le=20, description="model calls per agent run")
    max_supervisor_iterations: int = Field(default=6, ge=2, le=20)
    max_revisions: int = Field(default=1, ge=0, le=5, description="revisions triggered by low ratings")
    feedback_window_seconds: float = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    min_lint_score: float | None = Field(
        default=8.0,
        ge=0,
        le=10,
        description="the quality gate: code scoring below this, or with any pylint error (E/F), goes back to the "
        "code agent with the messages; null turns the gate off",
    )
    max_fix_rounds: int = Field(default=2, ge=0, le=5, description="fix rounds of the quality gate")
    budget_usd: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_USD, description="stop before a model call that could spend more (USD)"
    )
    budget_tokens: int | None = Field(
        default=None, gt=0, le=MAX_BUDGET_TOKENS, description="stop before a model call that could use more tokens"
    )
    mcp_tools: list[McpToolSelector] | None = Field(
        default=None,
        max_length=MAX_MCP_SELECTORS,
        description="MCP tools the agents may use: a server of MCP_SERVERS_FILE (all its tools) or `server.tool`; "
        "default none",
    )
    tests: Annotated[str, Field(max_length=MAX_TESTS, json_schema_extra={"pattern": NOT_BLANK})] | None = Field(
        default=None,
        description="pytest source that judges the code (it imports the module named by `module`); run in the "
        "sandbox, failures go back to the code agent",
    )
    module: ModuleFile = Field(
        default="solution.py", description="the file the code is written to beside `files`, which the tests import"
    )
    test_gate: Annotated[TestGateMode, Field(strict=False)] | None = Field(
        default=None,
        description="off | advisory | required; default required with `tests`, off without. Without `tests`, "
        "advisory and required ask the code agent for its own tests, which only advise",
    )
    resume: ResumeState | None = Field(
        default=None, description="set by the workflow itself when it continues as new; never by callers"
    )

    @field_validator("files")
    @classmethod
    def _files_fit(cls, files: list[ContextFile] | None, info: ValidationInfo) -> list[ContextFile] | None:
        """Each path once; code_context and the contents within MAX_CODE_CONTEXT (rules a schema cannot say)."""
        seen: set[str] = set()
        for file in files or []:
            if file.path in seen:
                raise ValueError(f"{file.path!r} is given more than once")
            seen.add(file.path)
        size = _context_size(info.data.get("code_context"), files)
        if size > MAX_CODE_CONTEXT:
            raise ValueError(
                f"code_context and the files' contents hold {size:,} characters; at most {MAX_CODE_CONTEXT:,}"
            )
        return files

    @field_validator("tests")
    @classmethod
    def _tests_not_blank(cls, tests: str | None) -> str | None:
        if tests is not None and not tests.strip():
            raise ValueError("must not be blank (leave it out for no tests)")
        return tests

    @field_validator("module")
    @classmethod
    def _module_is_free(cls, module: str, info: ValidationInfo) -> str:
        """The module is written beside the task's files and the tests: its path must be its own."""
        if module == TESTS_FILE:
            raise ValueError(f"{module!r} is where the tests are written")
        for file in info.data.get("files") or []:
            if file.path == module:
                raise ValueError(f"{module!r} is also the path of one of `files`")
            if module.startswith(f"{file.path}/") or file.path.startswith(f"{module}/"):
                raise ValueError(f"{module!r} and the file {file.path!r} cannot both exist (a file and a directory)")
        return module

    @model_validator(mode="after")
    def _tests_file_is_free(self) -> CodingTaskInput:
        if self.test_gate_mode is not TestGateMode.OFF and any(f.path == TESTS_FILE for f in self.files or []):
            raise ValueError(f"files: {TESTS_FILE!r} is where the tests are written; rename that file")
        return self

    @property
    def test_gate_mode(self) -> TestGateMode:
        """`test_gate` as given, or its default: required with `tests`, off without."""
        if self.test_gate is not None:
            return self.test_gate
        return TestGateMode.REQUIRED if self.tests is not None else TestGateMode.OFF

    def context_size(self) -> int:
        """Characters every code-agent call carries: code_context, every file's content and the tests."""
        return _context_size(self.code_context, self.files) + len(self.tests or "")

    @property
    def feedback_window(self) -> timedelta:
        return timedelta(seconds=self.feedback_window_seconds)


# --------------------------------------------------------------------------- signal


class FeedbackInput(_Strict):
    """Payload of the `feedback` signal."""

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class EventsQueryInput(_Strict):
    after: int = Field(default=0, ge=0)


def _one_limit_at_least(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": kind}}}
        for name, kind in (("budget_usd", "number"), ("budget_tokens", "integer"))
    ]


class BudgetRaise(_Strict):
    """Payload of the `raise_budget` update: a new limit for either or both (each above what is spent)."""

    model_config = ConfigDict(json_schema_extra=_one_limit_at_least)

    budget_usd: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD)
    budget_tokens: int | None = Field(default=None, gt=0, le=MAX_BUDGET_TOKENS)

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetRaise:
        if self.budget_usd is None and self.budget_tokens is None:
            raise ValueError("give budget_usd, budget_tokens or both")
        return self


class ToolApproval(_Strict):
    """Payload of the `approve_tool` update: the decision on one MCP tool call waiting in `awaiting_approval`."""

    call_id: str = Field(min_length=1, max_length=100)
    approved: bool
    reason: str | None = Field(default=None, max_length=MAX_COMMENT)


# --------------------------------------------------------------------------- MCP tools

McpPolicy = Literal["allow", "ask", "deny"]


class McpTool(BaseModel):
    """One MCP tool as a task offers it: `server.tool` in events and docs, `server__tool` to the model (provider
    tool names allow no dot), its description and JSON schema as the server lists them, and the approval policy."""

    server: str
    tool: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    policy: McpPolicy = "ask"
    retryable: bool = False  # read-only or idempotent (the server's annotations): retried after a failure

    @property
    def name(self) -> str:
        return f"{self.server}.{self.tool}"

    @property
    def model_name(self) -> str:
        return f"{self.server}__{self.tool}"


class McpListRequest(BaseModel):
    selectors: list[str]  # `server` or `server.tool`, as the task input says


class McpToolList(BaseModel):
    tools: list[McpTool] = Field(default_factory=list)
    unavailable: dict[str, str] = Field(default_factory=dict)  # selector -> why it offers no tool


class McpCallRequest(BaseModel):
    server: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    call_id: str = ""


class McpCallResult(BaseModel):
    text: str  # what the model reads (at most MAX_MCP_RESULT characters)
    is_error: bool = False  # the tool said it failed (`isError`): data for the model, not an activity failure
    chars_cut: int = 0
    duration_ms: int = 0


class PendingApproval(BaseModel):
    """An MCP tool call waiting for `approve_tool` (`status.pending_approvals`)."""

    call_id: str
    tool: str  # server.tool
    arguments: dict[str, Any] = Field(default_factory=dict)
    requested_at: str


class ToolUsage(BaseModel):
    """`status.tool_usage[server.tool]`: the MCP calls a task made of one tool."""

    calls: int = 0
    errors: int = 0
    denied: int = 0


# --------------------------------------------------------------------------- LLM activity


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None  # set when the model sent arguments that are not a JSON object


class ChatMessage(BaseModel):
    """Provider-neutral chat message; the LLM activity translates it to OpenAI or Anthropic shapes."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    is_error: bool = False


class CallAllowance(BaseModel):
    """What one model call may still spend; the activity refuses a call whose bound is above it."""

    usd: float | None = None
    tokens: int | None = None


class LlmRequest(BaseModel):
    role: AgentRole
    model: str | None = None  # None: the worker's default for the role
    system: str
    messages: list[ChatMessage]
    tools: list[ToolName] = Field(default_factory=list)
    mcp_tools: list[McpTool] = Field(default_factory=list)  # offered beside `tools`, each as its model_name
    max_tokens: int = 4096
    allowance: CallAllowance | None = None  # what is left of the task's budget; None: no budget
    # The agent-loop step this call is, numbered by the workflow (on through an agent run's fix rounds): the
    # llm_call event and the call's llm_delta events both carry it, so the console closes each call's live block.
    step: int = 1
    # Someone read the task's llm_delta topic when the call was scheduled: publish its text from the start. False:
    # gather it and publish it only once the WATCHED_UNTIL_MEMO says someone came (activities/deltas.py).
    deltas: bool = True


class LlmResponse(BaseModel):
    model: str  # provider:model that answered
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    input_tokens: int = 0  # every input token, the cached ones included
    output_tokens: int = 0
    cached_input_tokens: int = 0  # read from the provider's prompt cache (a part of input_tokens)
    cache_write_tokens: int = 0  # written to Anthropic's prompt cache (a part of input_tokens)
    cost_usd: float | None = None  # at the worker's price table; None: the model has no price
    warnings: list[str] = Field(default_factory=list)  # e.g. fell back to the offline model, no price, cut short
    streams_deltas: bool = False  # the worker publishes llm_delta events (LLM_DELTA_INTERVAL_MS is not 0)


# --------------------------------------------------------------------------- tool activities


class LintRequest(BaseModel):
    code: str
    filename: str = "draft.py"


class LintMessage(BaseModel):
    line: int
    column: int
    symbol: str
    message_id: str
    type: str
    message: str


class LintResult(BaseModel):
    score: float | None = None
    messages: list[LintMessage] = Field(default_factory=list)
    error: str | None = None  # pylint could not run (timeout, memory, crash)

    def summary(self, limit: int = 20) -> str:
        if self.error:
            return f"lint failed: {self.error}"
        lines = [f"pylint score: {self.score}/10, {len(self.messages)} message(s)"]
        lines += [f"line {m.line}: {m.message_id} ({m.symbol}) {m.message}" for m in self.messages[:limit]]
        return "\n".join(lines)


class SandboxLimits(BaseModel):
    """What one sandboxed run may use; the run is stopped (and says which limit) when it goes past one."""

    wall_seconds: float = Field(default=60.0, gt=0, le=600)
    cpu_seconds: int = Field(default=30, gt=0, le=600)
    memory_bytes: int = Field(default=512 * 2**20, gt=0)  # address space of each process
    processes: int = Field(default=64, gt=0)
    open_files: int = Field(default=256, gt=0)
    file_bytes: int = Field(default=16 * 2**20, gt=0)  # the largest file a process may write
    output_bytes: int = Field(default=64 * 2**10, gt=0)  # of stdout + stderr kept; the rest is counted and cut
    disk_bytes: int = Field(default=64 * 2**20, gt=0)  # the run's own directory (a tmpfs: held in memory)


class RunTestsRequest(BaseModel):
    """Everything one sandboxed test run needs, so a retry on another worker needs no shared disk: the candidate
    module (written as `module`), the task's files beside it, and the pytest source (written as `tests_file`)."""

    code: str
    tests: str
    module: FilePath = "solution.py"
    tests_file: FilePath = "test_solution.py"
    files: list[ContextFile] = Field(default_factory=list)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)


class TestFailure(BaseModel):
    __test__ = False  # a contract model, not a pytest class (pytest collects `Test*` names)

    test: str  # pytest's node id, e.g. test_solution.py::test_product
    message: str  # the assertion or the traceback's end, trimmed


class TestReport(BaseModel):
    """What a sandboxed run of the tests found. `outcome`: `passed` (every test passed, at least one ran),
    `failed` (a test failed or errored, or none was collected), `timed_out`, `killed` (a limit: `killed_by`),
    `unavailable` (the sandbox could not be set up: `error` says why, and the code was never run)."""

    __test__ = False

    outcome: Literal["passed", "failed", "timed_out", "killed", "unavailable"]
    passed: int = 0
    failed: int = 0
    errors: int = 0  # collection and fixture errors
    failures: list[TestFailure] = Field(default_factory=list)
    exit_code: int | None = None
    timed_out: bool = False
    killed_by: str | None = None  # the limit that stopped the run, e.g. "memory", "cpu time", "output"
    duration_ms: int = 0
    output_head: str = ""
    output_tail: str = ""
    output_bytes_cut: int = 0
    error: str | None = None  # set with outcome "unavailable"

    def summary(self, limit: int = 10) -> str:
        """A few lines for the model and the Web UI: `run_tests · 3 passed, 1 failed` and each failure."""
        if self.outcome == "unavailable":
            return f"run_tests · sandbox unavailable: {self.error}"
        counts = f"{self.passed} passed, {self.failed} failed" + (f", {self.errors} error(s)" if self.errors else "")
        head = f"run_tests · {counts}"
        if self.timed_out or self.killed_by:
            head += f" (stopped: {'wall time' if self.timed_out else self.killed_by})"
        lines = [head] + [f"{f.test}: {f.message}" for f in self.failures[:limit]]
        return "\n".join(lines)


class TestRound(BaseModel):
    """One round of the test gate: the report before the fix and after it."""

    __test__ = False

    round: int
    passed_before: int
    failed_before: int
    passed_after: int
    failed_after: int


class RagQuery(BaseModel):
    query: str
    top_k: int = 3
    owner: str | None = None  # the task's tenant: the memory API searches its documents besides the shared base


class RagHit(BaseModel):
    content: str
    source: str
    score: float


class RagResult(BaseModel):
    results: list[RagHit] = Field(default_factory=list)


# --------------------------------------------------------------------------- state (the `status` query)


class Feedback(BaseModel):
    rating: int
    comment: str | None = None
    received_at: str


class ModelUsage(BaseModel):
    calls: int = 0
    input_tokens: int = 0  # the cached ones included
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = 0.0  # None once a call of this model had no price


class LintRound(BaseModel):
    """One round of the quality gate: the pylint verdict before the fix and after it."""

    round: int
    score_before: float | None
    score_after: float | None
    errors_before: int  # error-class messages (E, F)
    errors_after: int


class Budget(BaseModel):
    """`status.budget`: the limits (None: none) and what the task has spent so far."""

    budget_usd: float | None = None
    budget_tokens: int | None = None
    spent_usd: float | None = 0.0  # None when a model without a price was called
    spent_tokens: int = 0
    needed_usd: float | None = Field(
        default=None, description="while a model call waits for budget: the least budget_usd it needs (spent + bound)"
    )
    needed_tokens: int | None = Field(
        default=None, description="while a model call waits for budget: the least budget_tokens it needs"
    )

    def shortfall(self) -> str | None:
        """Why the waiting model call still cannot go ahead under these limits, or None."""
        short = []
        if self.needed_usd is not None and (self.budget_usd or 0.0) < self.needed_usd:
            short.append(f"budget_usd {self.budget_usd or 0:g} is below the ${self.needed_usd:.6f} it needs")
        if self.needed_tokens is not None and (self.budget_tokens or 0) < self.needed_tokens:
            short.append(f"budget_tokens {self.budget_tokens} is below the {self.needed_tokens} tokens it needs")
        return f"the waiting model call still cannot go ahead: {'; '.join(short)}" if short else None


class CodeResult(BaseModel):
    code: str
    explanation: str = ""
    model: str
    lint: LintResult | None = None
    steps: int = 0
    revision: int = 0
    lint_gate: LintGate | None = None  # None: code from before the gate existed
    lint_rounds: list[LintRound] = Field(default_factory=list)
    tests: TestReport | None = None  # the last run of the tests on this code; None: no run
    tests_by: Literal["user", "model"] | None = None  # whose tests: the user's `tests` judge, the model's advise
    test_gate: TestGate | None = None
    test_rounds: list[TestRound] = Field(default_factory=list)


class DocResult(BaseModel):
    documentation: str
    model: str
    steps: int = 0
    code_revision: int = 0  # the code revision these docs describe


class TaskResults(BaseModel):
    code_generation: CodeResult | None = None
    documentation: DocResult | None = None


class TaskEvent(BaseModel):
    """One progress event. Its id is its position on the task's event stream plus one (1, 2, 3, …), so a reader
    resumes after the last id it saw; `llm_delta` events live on the stream only, so the `events` query's ids skip
    theirs."""

    id: int
    at: str
    type: EventType
    message: str
    agent: AgentRole | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class TaskState(BaseModel):
    """What the `status` query returns (and what the workflow returns when it completes)."""

    session_id: str
    task_description: str
    task_status: TaskStatus = TaskStatus.PLANNING
    current_agent: AgentRole | None = None
    plan: str | None = None
    results: TaskResults = Field(default_factory=TaskResults)
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    logs: list[str] = Field(
        default_factory=list, description="the recent events' messages, oldest first, as '<time> <message>'"
    )
    feedback: list[Feedback] = Field(default_factory=list)
    revisions: int = 0
    models: dict[AgentRole, str] = Field(default_factory=dict, description="the model each role used last")
    usage: dict[str, ModelUsage] = Field(default_factory=dict, description="per provider:model")
    cost_usd: float | None = Field(default=0.0, description="the task's total; null once a model had no price")
    budget: Budget = Field(default_factory=Budget)
    pending_approvals: list[PendingApproval] = Field(
        default_factory=list, description="MCP tool calls waiting for `approve_tool`"
    )
    tool_usage: dict[str, ToolUsage] = Field(default_factory=dict, description="MCP calls per server.tool")
    created_at: str
    updated_at: str


class EventsPage(BaseModel):
    events: list[TaskEvent]
    task_status: TaskStatus
    last_id: int


# --------------------------------------------------------------------------- search attributes
# What the Web UI and `temporal workflow list --query` filter on. Registered once per namespace from this list:
# `python -m orchestrator.search_attributes register` (idempotent); `make run`'s dev server gets them as flags.

SA_TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
SA_AGENT = SearchAttributeKey.for_keyword("Agent")
SA_CODE_MODEL = SearchAttributeKey.for_keyword("CodeModel")
SA_DOC_MODEL = SearchAttributeKey.for_keyword("DocModel")
SA_LINT_SCORE = SearchAttributeKey.for_float("LintScore")
SA_FEEDBACK_RATING = SearchAttributeKey.for_int("FeedbackRating")
SA_TOTAL_TOKENS = SearchAttributeKey.for_int("TotalTokens")
SA_OWNER = SearchAttributeKey.for_keyword("Owner")
SA_COST_USD = SearchAttributeKey.for_float("CostUsd")
SA_LINT_GATE = SearchAttributeKey.for_keyword("LintGate")
SA_TEST_GATE = SearchAttributeKey.for_keyword("TestGate")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    SA_TASK_STATUS,
    SA_AGENT,
    SA_CODE_MODEL,
    SA_DOC_MODEL,
    SA_LINT_SCORE,
    SA_FEEDBACK_RATING,
    SA_TOTAL_TOKENS,
    SA_OWNER,
    SA_COST_USD,
    SA_LINT_GATE,
    SA_TEST_GATE,
)
OWNER_MEMO = "owner"  # memo key of the tenant that started the task (the gateway checks it on every request)
DESCRIPTION_MEMO = "task_description"  # memo key of the description's start, what GET /tasks lists
DESCRIPTION_MEMO_CHARS = 200


def start_search_attributes(owner: str | None = None) -> TypedSearchAttributes:
    """The search attributes a task starts with, so that it keeps all of `SEARCH_ATTRIBUTES` current.

    The rule: a task keeps its search attributes current when it is started with `TaskStatus` set. The server
    refuses a start whose attributes are not registered, and `register` registers the whole list at once, so a
    task that started with `TaskStatus` knows the namespace has them. A task started without it (a bare CLI start,
    a namespace without them) runs without search attributes and says so in its warnings.
    """
    pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(SA_TASK_STATUS, TaskStatus.PLANNING.value)]
    if owner:
        pairs.append(SearchAttributePair(SA_OWNER, owner[:255]))
    return TypedSearchAttributes(pairs)


class ResumeState(BaseModel):
    """What a run hands to the next one when it continues as new (a long revision loop)."""

    state: TaskState
    pending_feedback: list[FeedbackInput] = Field(default_factory=list)
    events: list[TaskEvent] = Field(default_factory=list, description="the recent events, so streams resume")
    next_event_id: int = 1
    stream: WorkflowStreamState | None = Field(
        default=None, description="the event stream's retained items and offsets (None from runs before it)"
    )
    mcp_tools: list[McpTool] | None = Field(
        default=None, description="the MCP tools the task listed, offered again without listing (None: not listed)"
    )


CodingTaskInput.model_rebuild()
