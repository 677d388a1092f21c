"""Settings of the memory API, read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MemorySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    memory_db_path: Path = Field(Path("data/memory.db"), description="SQLite file of the knowledge base")
    memory_api_host: str = "127.0.0.1"
    memory_api_port: int = Field(8001, ge=1, le=65535)
    embedding_model: str = Field(
        "local:all-MiniLM-L6-v2",
        description="vectors for hybrid search: 'local:all-MiniLM-L6-v2' (default), 'local:<dir>', "
        "'openai:<model>'; '' = BM25 only",
    )
    embedding_runtime: Literal["numpy", "torch"] = Field(
        "numpy", description="what runs a local model: numpy (default) or sentence-transformers (the extra)"
    )
    memory_busy_timeout: float = Field(10.0, gt=0, description="seconds a writer waits for another")
    memory_api_key: SecretStr | None = Field(
        None,
        description="the service key (the worker's, the operator's): searches any tenant's documents with the "
        "shared base and writes the shared base; must differ from every tenant's key",
    )
    memory_max_body_bytes: int = Field(
        4_194_304, ge=1_024, description="larger request bodies get 413 (a 2 MB text document, JSON-escaped, fits)"
    )
