"""Worker observability: Prometheus metrics, the project's own metrics, JSON logs and optional tracing.

* **Metrics**: `install_runtime()` makes the SDK's Runtime export every metric on `WORKER_METRICS_PORT`
  (default 9464, `GET /metrics`; `0` turns it off): Temporal's own (`temporal_*`: task latencies, slots,
  polls, activity and workflow outcomes) and the project's, recorded through the same meter by
  `MetricsInterceptor` for every activity:

  | metric | type | labels |
  |---|---|---|
  | `orchestrator_llm_calls` | counter | provider, model, role, outcome (`ok` / the failure type) |
  | `orchestrator_llm_tokens` | counter | provider, model, kind (`input` / `output`) |
  | `orchestrator_llm_latency` | histogram, seconds | provider, model |
  | `orchestrator_lint_score` | histogram, 0 to 10 | |
  | `orchestrator_rag_latency` | histogram, seconds | outcome |
  | `orchestrator_rag_hits` | histogram | |
  | `orchestrator_activity_failures` | counter | cause (failure type), retryable (`true` = Temporal retries it) |
  | `orchestrator_activity_retries` | counter | (attempts after the first) |

  Every metric also carries the SDK's `activity_type`, `namespace` and `task_queue` labels.
* **Logs**: `configure_logging()`; `LOG_FORMAT=json` writes one JSON object per line with `workflow_id`,
  `run_id`, `activity_type`, `attempt` and `workflow_type` whenever the record comes from an activity or workflow.
* **Tracing** (off by default): `OTEL_ENABLED=true` adds `temporalio.contrib.opentelemetry.TracingInterceptor`
  (needs the `otel` extra: `pip install -e '.[otel]'`); spans go to the OTLP endpoint of the standard
  `OTEL_EXPORTER_OTLP_ENDPOINT` variable when the OTLP exporter is installed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from workflows.models import LINT_ACTIVITY, LLM_ACTIVITY, RAG_ACTIVITY, LintResult, LlmResponse, RagResult

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9464
LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
BUCKETS: dict[str, Sequence[float]] = {
    "orchestrator_llm_latency": LATENCY_BUCKETS,
    "orchestrator_rag_latency": LATENCY_BUCKETS,
    "orchestrator_lint_score": [0, 2, 4, 5, 6, 7, 8, 9, 9.5, 10],
    "orchestrator_rag_hits": [0, 1, 2, 3, 5, 10],
}


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    worker_metrics_port: int = DEFAULT_METRICS_PORT  # 0: no metrics endpoint
    worker_metrics_host: str = "0.0.0.0"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    otel_enabled: bool = False


# --------------------------------------------------------------------------- runtime / metrics endpoint


def metrics_runtime(bind_address: str) -> Runtime:
    """A Runtime whose metrics (the SDK's and the project's) are served for Prometheus at `bind_address`."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind_address, histogram_bucket_overrides=BUCKETS),
        )
    )


def install_runtime(settings: TelemetrySettings) -> Runtime | None:
    """Make the metrics runtime the default one, before any client is created (so every client uses it)."""
    if settings.worker_metrics_port <= 0:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    try:
        runtime = metrics_runtime(address)
    except (ValueError, RuntimeError) as exc:  # e.g. the port is taken by another worker on this host
        logger.error("no worker metrics: cannot serve them on %s (%s); set WORKER_METRICS_PORT", address, exc)
        return None
    Runtime.set_default(runtime, error_if_already_set=True)
    logger.info("worker metrics on http://%s:%s/metrics", settings.worker_metrics_host, settings.worker_metrics_port)
    return runtime


# --------------------------------------------------------------------------- project metrics


class _Metrics:
    """The project's instruments on one meter (created once per meter)."""

    def __init__(self, meter: MetricMeter) -> None:
        self.llm_calls = meter.create_counter("orchestrator_llm_calls", "LLM calls by provider, model and outcome")
        self.llm_tokens = meter.create_counter("orchestrator_llm_tokens", "LLM tokens by provider, model and kind")
        self.llm_latency = meter.create_histogram_float("orchestrator_llm_latency", "LLM call latency", "s")
        self.lint_score = meter.create_histogram_float("orchestrator_lint_score", "pylint score of linted code")
        self.rag_latency = meter.create_histogram_float("orchestrator_rag_latency", "knowledge-base query latency", "s")
        self.rag_hits = meter.create_histogram("orchestrator_rag_hits", "snippets returned per knowledge-base query")
        self.failures = meter.create_counter("orchestrator_activity_failures", "activity failures by cause")
        self.retries = meter.create_counter("orchestrator_activity_retries", "activity attempts after the first")


_instruments: dict[int, tuple[MetricMeter, _Metrics]] = {}


def _metrics() -> _Metrics:
    meter = activity.metric_meter()
    cached = _instruments.get(id(meter))
    if cached is None or cached[0] is not meter:
        cached = (meter, _Metrics(meter))
        _instruments[id(meter)] = cached
    return cached[1]


def _split_model(model: str | None) -> tuple[str, str]:
    provider, _, name = (model or "default").partition(":")
    return provider, name or provider


def _cause(exc: BaseException) -> tuple[str, bool]:
    if isinstance(exc, ApplicationError):
        return exc.type or "ApplicationError", not exc.non_retryable
    return type(exc).__name__, True


class _MetricsActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        metrics = _metrics()
        if info.attempt > 1:
            metrics.retries.add(1)
        started = time.monotonic()
        try:
            result = await self.next.execute_activity(input)
        except BaseException as exc:
            cause, retryable = _cause(exc)
            metrics.failures.add(1, {"cause": cause, "retryable": str(retryable).lower()})
            self._record(info.activity_type, input.args, None, time.monotonic() - started, cause)
            raise
        self._record(info.activity_type, input.args, result, time.monotonic() - started, "ok")
        return result

    @staticmethod
    def _record(activity_type: str, args: Sequence[Any], result: Any, seconds: float, outcome: str) -> None:
        metrics = _metrics()
        if activity_type == LLM_ACTIVITY:
            request = args[0] if args else None
            role = str(getattr(request, "role", "unknown"))
            model = result.model if isinstance(result, LlmResponse) else getattr(request, "model", None)
            provider, name = _split_model(model)
            labels = {"provider": provider, "model": name}
            metrics.llm_calls.add(1, {**labels, "role": role, "outcome": outcome})
            metrics.llm_latency.record(seconds, labels)
            if isinstance(result, LlmResponse):
                metrics.llm_tokens.add(max(0, result.input_tokens), {**labels, "kind": "input"})
                metrics.llm_tokens.add(max(0, result.output_tokens), {**labels, "kind": "output"})
        elif activity_type == LINT_ACTIVITY and isinstance(result, LintResult) and result.score is not None:
            metrics.lint_score.record(float(result.score))
        elif activity_type == RAG_ACTIVITY:
            metrics.rag_latency.record(seconds, {"outcome": outcome})
            if isinstance(result, RagResult):
                metrics.rag_hits.record(len(result.results))


class MetricsInterceptor(Interceptor):
    """Records the project's metrics for every activity, on the worker's metric meter."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MetricsActivityInbound(next)


def worker_interceptors(settings: TelemetrySettings | None = None) -> list[Interceptor]:
    """The interceptors every worker runs: project metrics always, tracing when OTEL_ENABLED is set."""
    settings = settings or TelemetrySettings()
    interceptors: list[Interceptor] = [MetricsInterceptor()]
    if settings.otel_enabled:
        interceptors.append(tracing_interceptor())
    return interceptors


# --------------------------------------------------------------------------- tracing (optional)


def tracing_interceptor() -> Interceptor:
    """OpenTelemetry tracing of workflows and activities; needs the `otel` extra."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        hint = "pip install -e '.[otel]'"
        raise SystemExit(f"OTEL_ENABLED is set but the otel extra is not installed ({hint}): {exc}") from None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "coding-orchestrator-worker"}))
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        except ImportError:
            logger.warning("OTEL_ENABLED: no OTLP exporter installed; spans are created but not exported")
        trace.set_tracer_provider(provider)
    return TracingInterceptor()


# --------------------------------------------------------------------------- logs


def _temporal_context() -> dict[str, Any]:
    """workflow id, activity type, … of the activity or workflow this code runs in, if any."""
    if activity.in_activity():
        info = activity.info()
        return {
            "workflow_id": info.workflow_id,
            "run_id": info.workflow_run_id,
            "workflow_type": info.workflow_type,
            "activity_type": info.activity_type,
            "activity_id": info.activity_id,
            "attempt": info.attempt,
            "task_queue": info.task_queue,
        }
    if workflow.in_workflow():
        winfo = workflow.info()
        return {
            "workflow_id": winfo.workflow_id,
            "run_id": winfo.run_id,
            "workflow_type": winfo.workflow_type,
            "task_queue": winfo.task_queue,
        }
    return {}


class TemporalContextFilter(logging.Filter):
    """Adds the Temporal context (workflow id, activity type, …) to every record, as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "temporal_context"):
            record.temporal_context = _temporal_context()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "temporal_context", None) or {}
        entry.update({k: v for k, v in context.items() if v is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: TelemetrySettings) -> None:
    """Root logging: plain text (the default) or one JSON object per line (`LOG_FORMAT=json`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TemporalContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
