"""What every provider shares: the interface, the error type and the mapping of HTTP answers to retries.

Errors are mapped to what Temporal should do: 429 retries after the server's Retry-After, 401/403 and other 4xx
are non-retryable, 5xx, timeouts and malformed replies are retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from workflows.models import LlmRequest, LlmResponse

MAX_RETRY_AFTER = timedelta(minutes=5)


class ChatProvider(Protocol):
    key_env: ClassVar[str | None]  # the environment variable holding its API key; None: it needs none

    def __init__(self, settings: WorkerSettings) -> None: ...

    @staticmethod
    def api_key(settings: WorkerSettings) -> str | None: ...

    async def chat(self, model: str, request: LlmRequest) -> LlmResponse:
        """One chat turn with `model` (the name after `provider:`); raises ProviderError."""
        ...

    async def aclose(self) -> None: ...


class _Client(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Client)


class SdkProvider(Generic[C]):
    """A provider whose SDK client is made on first use (one per worker, its connection pool shared by every
    call) and closed with the worker."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._client: C | None = None

    def _new_client(self) -> C:
        raise NotImplementedError

    def _get_client(self) -> C:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class ProviderError(ApplicationError):
    """A provider call failed; `non_retryable` and `next_retry_delay` carry what Temporal should do."""


def malformed(provider: str, what: str) -> ProviderError:
    return ProviderError(f"{provider} sent a malformed reply: {what}", type="MalformedReply")


def cut_short(exc: BaseException) -> str | None:
    """What the transport said, when a connection error is a reply whose body ended before its Content-Length
    (aiohttp's ClientPayloadError, httpx's RemoteProtocolError), else None."""
    cause: BaseException | None = exc
    while cause is not None:
        name, text = type(cause).__name__, str(cause)
        if name == "ClientPayloadError" or (name == "RemoteProtocolError" and "message body" in text):
            return text
        cause = cause.__cause__ or cause.__context__
    return None


def connection_error(provider: str, exc: BaseException) -> ProviderError:
    """A connection error of the SDK: a body cut mid-way is a malformed reply, anything else an unreachable server."""
    if (what := cut_short(exc)) is not None:
        return malformed(provider, f"the body was cut short ({what})")
    return ProviderError(f"cannot reach {provider}: {exc}", type="ProviderUnavailable")


def unexpected_shape(provider: str, reply: object, required: tuple[str, ...]) -> ProviderError | None:
    """The SDK hands back the text of a body that is not JSON, and builds a reply object from any JSON without
    checking it: either is a malformed reply when the fields the product reads are missing."""
    if isinstance(reply, str):
        if (title := html_title(reply)) is not None:
            return malformed(provider, f"an HTML page ({title!r}), not the API's JSON")
        return malformed(provider, f"text, not the API's JSON: {reply.strip()[:80]!r}")
    missing = [name for name in required if getattr(reply, name, None) is None]
    if not missing:
        return None
    extra = getattr(reply, "model_extra", None) or {}
    got = ", ".join(sorted(extra)) or "nothing else"
    return malformed(provider, f"not the API's shape: no {', '.join(missing)} (the JSON has {got})")


def html_title(body: str) -> str | None:
    """An HTML error page's title (a proxy's or a load balancer's page, not the API's JSON error)."""
    if not body.lstrip().startswith("<"):
        return None
    found = re.search(r"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    return found.group(1).strip()[:80] if found else "untitled"


def retry_after(headers: Mapping[str, str]) -> timedelta | None:
    """The server's Retry-After (`retry-after-ms`, seconds or an HTTP date), capped."""
    if ms := headers.get("retry-after-ms"):
        try:
            return min(timedelta(milliseconds=float(ms)), MAX_RETRY_AFTER)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(timedelta(seconds=max(0.0, float(value))), MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delay = when.timestamp() - activity.info().current_attempt_scheduled_time.timestamp()
    return min(timedelta(seconds=max(0.0, delay)), MAX_RETRY_AFTER)


def status_error(
    provider: str, status: int, message: str, headers: Mapping[str, str], key_env: str | None, body: str = ""
) -> ProviderError:
    """An HTTP error answer of a provider, as Temporal should treat it."""
    detail = f"{provider} returned HTTP {status}: {message}"
    if (title := html_title(body)) is not None:
        detail = f"{provider} returned HTTP {status} with an HTML page, not the API's JSON: {title!r}"
    if status == 429:
        return ProviderError(detail, type="RateLimited", next_retry_delay=retry_after(headers))
    if status in (401, 403):
        hint = f" (check {key_env})" if key_env else ""
        return ProviderError(detail + hint, type="AuthenticationFailed", non_retryable=True)
    if status in (408, 409) or status >= 500:
        return ProviderError(detail, type="ProviderUnavailable", next_retry_delay=retry_after(headers))
    return ProviderError(detail, type="BadRequest", non_retryable=True)


def parse_arguments(raw: str | None) -> tuple[dict[str, Any], str | None]:
    """A tool call's JSON arguments: (the object, None) or ({}, what is wrong with them)."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return {}, f"arguments are not valid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return {}, "arguments must be a JSON object"
    return value, None
