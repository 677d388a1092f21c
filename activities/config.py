"""Worker-side settings, read from the environment (and `.env`). API keys live here, never in workflow input."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.models import TASK_QUEUE, AgentRole, ModelId


def secret(value: SecretStr | None) -> str | None:
    """A secret setting's value, None when unset or blank."""
    text = value.get_secret_value().strip() if value else ""
    return text or None


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    temporal_task_queue: str = TASK_QUEUE
    llm_mode: Literal["auto", "live", "offline"] = "auto"
    planner_model: ModelId = "openai:gpt-4o-mini"
    code_model: ModelId = "openai:gpt-4o"
    doc_model: ModelId = "anthropic:claude-sonnet-4-6"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    llm_request_timeout_seconds: float = Field(default=120.0, gt=0, le=170)
    model_prices_file: str | None = Field(default=None, description="JSON or TOML price table (activities/prices.py)")
    llm_delta_interval_ms: int = Field(
        default=250, ge=0, le=10_000, description="batch interval of llm_delta events (streamed model text); 0 = off"
    )
    anthropic_prompt_caching: bool = Field(
        default=True, description="mark each conversation's stable prefix with cache_control (Anthropic)"
    )
    memory_api_url: str = "http://localhost:8001"
    nats_url: str | None = Field(
        default=None, description="the live channel (orchestrator/live.py), e.g. nats://localhost:4222; unset: off"
    )
    memory_api_key: SecretStr | None = None
    rag_request_timeout_seconds: float = Field(default=5.0, gt=0, le=14)
    lint_timeout_seconds: float = Field(default=30.0, gt=0, le=80)
    lint_memory_mb: int = Field(default=1024, ge=128)
    lint_pool_size: int = Field(
        default=max(1, min(4, os.cpu_count() or 1)), ge=0, le=16, description="warm pylint processes; 0 = cold"
    )
    sandbox_bwrap: str = Field(default="bwrap", description="bubblewrap, by name on PATH or a path (run_tests)")
    sandbox_python: str | None = Field(default=None, description="the Python that runs tests; default: the worker's")
    sandbox_uid: int = Field(default=65534, gt=0, description="the uid the tests run as when the worker is root")
    sandbox_max_runs: int = Field(
        default=max(1, os.cpu_count() or 1), ge=1, le=64, description="sandboxed runs one worker runs at once"
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        default=10,
        ge=2,  # the SDK's floor with a workflow cache
        description="workflow tasks one worker runs at once; the rest wait on the server (docs/performance.md)",
    )
    mcp_servers_file: str | None = Field(default=None, description="the MCP servers' JSON file (docs/mcp.md)")
    mcp_idle_seconds: float = Field(default=300.0, gt=0, description="an MCP connection unused this long is closed")
    log_level: str = "INFO"

    def default_model(self, role: AgentRole) -> str:
        return {
            AgentRole.PLANNER: self.planner_model,
            AgentRole.CODE_GENERATION: self.code_model,
            AgentRole.DOCUMENTATION: self.doc_model,
        }[role]
