"""Settings of the codec server, read from the environment (the keys: PAYLOAD_ENCRYPTION_KEYS, as every client)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PORT = 8081
WEB_UI_ORIGIN = "http://localhost:8233"


class CodecSettings(BaseSettings):
    """Every field is an environment variable of the same name, upper case (e.g. `CODEC_SERVER_PORT`)."""

    model_config = SettingsConfigDict(extra="ignore")

    codec_server_host: str = Field("127.0.0.1", description="interface uvicorn binds to")
    codec_server_port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [WEB_UI_ORIGIN], description="comma-separated browser origins (the Web UI's)"
    )
    log_level: str = "INFO"

    @field_validator("codec_cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value
