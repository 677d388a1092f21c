"""Request and response bodies of the memory API (they are what the OpenAPI docs show)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.auth import TENANT_PATTERN
from api.schema import NotBlankStr, SchemaStrict

MAX_QUERY_CHARS = 2_000
MAX_TOP_K = 50
MAX_DOCUMENT_CHARS = 2_000_000
MAX_DOCUMENTS_PER_REQUEST = 100


class Body(SchemaStrict):
    """A request body: exactly its fields (an unknown one is a 422 naming it)."""

    model_config = ConfigDict(extra="forbid")


class RagQuery(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"query": "how are retries handled", "top_k": 5}]})

    query: NotBlankStr = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="a question or identifiers")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description=f"how many results, 1..{MAX_TOP_K}")
    owner: str | None = Field(
        None,
        pattern=TENANT_PATTERN,
        description="the tenant whose documents are searched besides the shared base: any, with the service key "
        "(MEMORY_API_KEY, the worker's); only the key's own tenant with a tenant's key (the default)",
    )


class RagResult(BaseModel):
    content: str
    source: str
    score: float = Field(description="higher is better: the BM25 score when BM25 alone ranked, else the RRF score")
    name: str = Field(description="qualified name of a function/class/method, '' for text")
    kind: str = Field(description="function, method, class, module or text")
    start_line: int
    end_line: int
    bm25_rank: int | None = None
    vector_rank: int | None = None
    literal_rank: int | None = Field(None, description="rank by the string literals a pasted error message matches")


class RagResponse(BaseModel):
    results: list[RagResult]
    mode: Literal["bm25", "hybrid"]
    warnings: list[str] = []
    took_ms: float


class DocumentIn(Body):
    source: str = Field(min_length=1, max_length=1_000, description="path or URI; the document's identity")
    content: str = Field(max_length=MAX_DOCUMENT_CHARS)
    kind: Literal["python", "text"] | None = Field(None, description="chunking; default: from the source suffix")


class DocumentsIn(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"documents": [{"source": "docs/retries.md", "content": "Activities retry with backoff."}]}]
        }
    )

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


class DocumentOut(BaseModel):
    source: str
    status: Literal["added", "replaced", "unchanged"]
    chunks: int
    embedded: int
    warning: str | None = None


class DocumentsOut(BaseModel):
    results: list[DocumentOut]


class DeleteOut(BaseModel):
    source: str
    deleted_chunks: int


class Health(BaseModel):
    status: Literal["ok"]


class Stats(BaseModel):
    documents: int
    chunks: int
    vectors: int
    embedding_model: str | None
    db_path: str
    db_bytes: int
    vectors_pending: int = Field(0, description="chunks still without a vector (serve embeds them in the background)")
    warnings: list[str] = Field([], description="why search is not what the settings ask for, e.g. BM25 only")
