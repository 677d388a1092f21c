"""Worker observability: Prometheus metrics, the project's own metrics, JSON logs and optional tracing.

* **Metrics**: `install_runtime()` makes the SDK's Runtime export every metric on `WORKER_METRICS_PORT`
  (default 9464, `GET /metrics`; `0` turns it off) of `WORKER_METRICS_HOST` (default 127.0.0.1; the compose file
  sets 0.0.0.0 so Prometheus reaches each replica): Temporal's own (`temporal_*`: task latencies, slots,
  polls, activity and workflow outcomes) and the project's (`activities.metrics`: each activity records its
  own; `MetricsInterceptor` adds the generic failure and retry counts of every activity).
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
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio import activity, workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.metrics import BUCKETS, instruments, outcome

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9464


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    worker_metrics_port: int = DEFAULT_METRICS_PORT  # 0: no metrics endpoint
    worker_metrics_host: str = "127.0.0.1"  # this machine only, like every service; 0.0.0.0 where Prometheus scrapes
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


# --------------------------------------------------------------------------- generic activity metrics


class _MetricsActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        metrics = instruments()
        if activity.info().attempt > 1:
            metrics.retries.add(1)
        try:
            return await self.next.execute_activity(input)
        except BaseException as exc:
            cause, retryable = outcome(exc)
            metrics.failures.add(1, {"cause": cause, "retryable": str(retryable).lower()})
            raise


class MetricsInterceptor(Interceptor):
    """Counts every activity's failures (by cause) and retries, on the worker's metric meter."""

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
