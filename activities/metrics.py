"""The project's own metrics, recorded by each activity on the worker's metric meter (`activity.metric_meter()`).

They are served with Temporal's own metrics on WORKER_METRICS_PORT (see `orchestrator.telemetry`), and carry the
SDK's `activity_type`, `namespace` and `task_queue` labels.

| metric | type | labels | recorded by |
|---|---|---|---|
| `orchestrator_llm_calls` | counter | provider, model, role, outcome (`ok` / the failure type) | llm_chat |
| `orchestrator_llm_tokens` | counter | provider, model, kind (`input` / `cached_input` / `output`) | llm_chat |
| `orchestrator_llm_cost_usd` | histogram, USD per call (`_sum`: dollars spent) | provider, model | llm_chat |
| `orchestrator_llm_latency` | histogram, seconds | provider, model | llm_chat |
| `orchestrator_lint_score` | histogram, 0 to 10 | | lint |
| `orchestrator_rag_latency` | histogram, seconds | outcome | search_knowledge |
| `orchestrator_rag_hits` | histogram | | search_knowledge |
| `orchestrator_mcp_calls` | counter | server, tool, outcome (`ok`, `tool_error`, `protocol_error`, …) | mcp_call_tool |
| `orchestrator_mcp_latency` | histogram, seconds | server, tool | mcp_call_tool |
| `orchestrator_activity_failures` | counter | cause, retryable | every activity (interceptor) |
| `orchestrator_activity_retries` | counter | | every activity (interceptor) |
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError

LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
BUCKETS: dict[str, Sequence[float]] = {
    "orchestrator_llm_latency": LATENCY_BUCKETS,
    "orchestrator_rag_latency": LATENCY_BUCKETS,
    "orchestrator_mcp_latency": [0.005, 0.01, 0.025, *LATENCY_BUCKETS],
    "orchestrator_llm_cost_usd": [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    "orchestrator_lint_score": [0, 2, 4, 5, 6, 7, 8, 9, 9.5, 10],
    "orchestrator_rag_hits": [0, 1, 2, 3, 5, 10],
}


class Instruments:
    """The project's instruments on one meter (created once per meter)."""

    def __init__(self, meter: MetricMeter) -> None:
        self.meter = meter
        self.llm_calls = meter.create_counter("orchestrator_llm_calls", "LLM calls by provider, model and outcome")
        self.llm_tokens = meter.create_counter("orchestrator_llm_tokens", "LLM tokens by provider, model and kind")
        self.llm_latency = meter.create_histogram_float("orchestrator_llm_latency", "LLM call latency", "s")
        self.llm_cost = meter.create_histogram_float("orchestrator_llm_cost_usd", "USD per LLM call", "USD")
        self.lint_score = meter.create_histogram_float("orchestrator_lint_score", "pylint score of linted code")
        self.rag_latency = meter.create_histogram_float("orchestrator_rag_latency", "knowledge-base query latency", "s")
        self.rag_hits = meter.create_histogram("orchestrator_rag_hits", "snippets returned per knowledge-base query")
        self.mcp_calls = meter.create_counter("orchestrator_mcp_calls", "MCP tool calls by server, tool and outcome")
        self.mcp_latency = meter.create_histogram_float("orchestrator_mcp_latency", "MCP tool call latency", "s")
        self.failures = meter.create_counter("orchestrator_activity_failures", "activity failures by cause")
        self.retries = meter.create_counter("orchestrator_activity_retries", "activity attempts after the first")


_instruments: dict[int, Instruments] = {}


def instruments() -> Instruments:
    """The instruments of the running activity's meter."""
    meter = activity.metric_meter()
    found = _instruments.get(id(meter))
    if found is None or found.meter is not meter:
        found = _instruments[id(meter)] = Instruments(meter)
    return found


def outcome(exc: BaseException) -> tuple[str, bool]:
    """(failure type, whether Temporal retries it) of an activity's exception."""
    if isinstance(exc, ApplicationError):
        return exc.type or "ApplicationError", not exc.non_retryable
    return type(exc).__name__, True
