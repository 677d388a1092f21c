"""Settings of the REST gateway, read from the environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.models import MAX_BUDGET_USD, TASK_QUEUE


class Settings(BaseSettings):
    """Every field is an environment variable of the same name, upper case (e.g. `GATEWAY_PORT`)."""

    model_config = SettingsConfigDict(extra="ignore")

    gateway_host: str = Field("127.0.0.1", description="interface uvicorn binds to")
    gateway_port: int = Field(8002, ge=1, le=65535)
    temporal_task_queue: str = Field(TASK_QUEUE, min_length=1, description="task queue of the CodingTask workers")
    gateway_rate_limit: str = Field(
        "600/minute", description="per API key, `limits` notation: '120/minute', '10/second;500/hour'"
    )
    gateway_rate_limit_storage: str = Field(
        "memory://",
        description="'memory://' (one replica) or 'redis://host:6379' shared by replicas (pip install coredis)",
    )
    gateway_max_body_bytes: int = Field(
        4_194_304, ge=1_024, description="larger request bodies get 413 (a 2 MB code_context, JSON-escaped, fits)"
    )
    gateway_cors_origins: list[str] = Field(default_factory=list, description='JSON list, e.g. ["https://ui.example"]')
    gateway_metrics_public: bool = Field(False, description="serve /metrics without X-API-KEY")
    gateway_poll_interval: float = Field(
        0.1, gt=0, le=10, description="least seconds between a task's stream long-polls (events in between are batched)"
    )
    gateway_stream_queue_size: int = Field(
        1000, ge=1, description="events a slow SSE client may fall behind before it is dropped with an `error`"
    )
    gateway_rpc_timeout: float = Field(10.0, gt=0, description="seconds a Temporal call may take before 503")
    gateway_reconnect_interval: float = Field(
        2.0, ge=0, description="minimum seconds between connection attempts while Temporal is down"
    )
    nats_url: str | None = Field(
        None, description="the live channel (e.g. nats://localhost:4222): watchers get events with no workflow task"
    )
    gateway_stream_max_seconds: float = Field(
        3600.0, gt=0, description="an SSE stream closes after this long; resume it with Last-Event-ID"
    )
    default_budget_usd: float | None = Field(
        None, gt=0, le=MAX_BUDGET_USD, description="budget_usd of tasks whose /invoke body names none"
    )
    temporal_ui_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s\"'<>]+$",
        description="the Temporal Web UI as the console's users reach it; default http://localhost:TEMPORAL_UI_PORT",
    )
    temporal_ui_port: int = Field(8233, ge=1, le=65535, description="the embedded dev server's Web UI port")
    log_level: str = "INFO"

    @property
    def web_ui_url(self) -> str:
        """Where the console's "open in the Temporal Web UI" links point."""
        return (self.temporal_ui_url or f"http://localhost:{self.temporal_ui_port}").rstrip("/")
