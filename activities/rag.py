"""The `search_knowledge` activity: a RAG query on the memory API (`POST {MEMORY_API_URL}/rag_query`), with the
service key MEMORY_API_KEY, for the task's owner (its documents and the shared base).

Connection errors and 5xx are raised so Temporal retries them; when retries run out the workflow tells the
agent "knowledge base unavailable" and the task goes on.
"""

from __future__ import annotations

import time

import httpx
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings, secret
from activities.metrics import instruments, outcome
from workflows.models import RAG_ACTIVITY, RagQuery, RagResult


class RagActivities:
    def __init__(self, settings: WorkerSettings, client: httpx.AsyncClient | None = None) -> None:
        key = secret(settings.memory_api_key)
        self._url = settings.memory_api_url.rstrip("/") + "/rag_query"
        self._client = client or httpx.AsyncClient(
            timeout=settings.rag_request_timeout_seconds, headers={"X-API-KEY": key} if key else {}
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @activity.defn(name=RAG_ACTIVITY)
    async def search_knowledge(self, query: RagQuery) -> RagResult:
        started = time.monotonic()
        metrics = instruments()
        try:
            result = await self._query(query)
        except BaseException as exc:
            metrics.rag_latency.record(time.monotonic() - started, {"outcome": outcome(exc)[0]})
            raise
        metrics.rag_latency.record(time.monotonic() - started, {"outcome": "ok"})
        metrics.rag_hits.record(len(result.results))
        return result

    async def _query(self, query: RagQuery) -> RagResult:
        try:
            response = await self._client.post(self._url, json=query.model_dump(exclude_none=True))
        except httpx.HTTPError as exc:
            raise ApplicationError(f"memory API unreachable at {self._url}: {exc!r}", type="MemoryApiDown") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ApplicationError(f"memory API returned HTTP {response.status_code}", type="MemoryApiDown")
        if response.status_code >= 400:
            raise ApplicationError(
                f"memory API rejected the query: HTTP {response.status_code} {response.text[:200]}",
                type="MemoryApiRejected",
                non_retryable=True,
            )
        try:
            result = RagResult.model_validate_json(response.content)
        except ValidationError as exc:
            raise ApplicationError(
                f"memory API sent an unexpected body: {exc.error_count()} problem(s)",
                type="MemoryApiMalformed",
                non_retryable=True,
            ) from None
        activity.logger.info("rag: %d hit(s) for %r", len(result.results), query.query[:80])
        return result
