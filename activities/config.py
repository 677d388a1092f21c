"""Worker-side settings, read from the environment (and `.env`). API keys live here, never in workflow input."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.models import MODEL_PATTERN, TASK_QUEUE, AgentRole

PROVIDER_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    temporal_task_queue: str = TASK_QUEUE
    llm_mode: Literal["auto", "live", "offline"] = "auto"
    planner_model: str = Field(default="openai:gpt-4o-mini", pattern=MODEL_PATTERN)
    code_model: str = Field(default="openai:gpt-4o", pattern=MODEL_PATTERN)
    doc_model: str = Field(default="anthropic:claude-sonnet-4-6", pattern=MODEL_PATTERN)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    llm_request_timeout_seconds: float = Field(default=120.0, gt=0, le=170)
    memory_api_url: str = "http://localhost:8001"
    memory_api_key: SecretStr | None = None
    rag_request_timeout_seconds: float = Field(default=5.0, gt=0, le=14)
    lint_timeout_seconds: float = Field(default=30.0, gt=0, le=80)
    lint_memory_mb: int = Field(default=1024, ge=128)
    lint_pool_size: int = Field(
        default=max(1, min(4, os.cpu_count() or 1)), ge=0, le=16, description="warm pylint processes; 0 = cold"
    )
    log_level: str = "INFO"

    def default_model(self, role: AgentRole) -> str:
        return {
            AgentRole.PLANNER: self.planner_model,
            AgentRole.CODE_GENERATION: self.code_model,
            AgentRole.DOCUMENTATION: self.doc_model,
        }[role]

    def api_key(self, provider: str) -> str | None:
        secret = {"openai": self.openai_api_key, "anthropic": self.anthropic_api_key}.get(provider)
        value = secret.get_secret_value().strip() if secret else ""
        return value or None

    def missing_keys(self) -> list[str]:
        """Environment variables the configured default models need but that are not set."""
        providers = {self.default_model(role).split(":", 1)[0] for role in AgentRole}
        return sorted(PROVIDER_KEY_ENV[p] for p in providers if p in PROVIDER_KEY_ENV and not self.api_key(p))
