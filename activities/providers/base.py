"""What every provider shares: the interface, the error type and the mapping of HTTP answers to retries.

Errors are mapped to what Temporal should do: 429 retries after the server's Retry-After, 401/403 and other 4xx
are non-retryable, 5xx, timeouts and malformed replies are retried.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp
import httpx
import httpx2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from workflows.models import LlmRequest, LlmResponse
from workflows.tools import request_tool_specs

MAX_RETRY_AFTER = timedelta(minutes=5)
CHARS_PER_TOKEN = 4

# What a stream cut mid-way raises from the SDKs' transports (aiohttp; httpx for openai, httpx2 for anthropic)
# rather than an SDK error.
STREAM_ERRORS = (OSError, aiohttp.ClientError, httpx.TransportError, httpx2.TransportError, asyncio.IncompleteReadError)

ChunkSink = Callable[[str], None]
"""Called for every chunk of a streamed reply with the text it adds ("" for a chunk of tool-call arguments,
usage or bookkeeping): the activity heartbeats and batches the text into `llm_delta` events."""


def ignore_chunk(text: str) -> None:
    """The sink of a call nobody watches."""


class ChatProvider(Protocol):
    key_env: ClassVar[str | None]  # the environment variable holding its API key; None: it needs none

    def __init__(self, settings: WorkerSettings) -> None: ...

    @staticmethod
    def api_key(settings: WorkerSettings) -> str | None: ...

    async def chat(self, model: str, request: LlmRequest, on_chunk: ChunkSink = ignore_chunk) -> LlmResponse:
        """One chat turn with `model` (the name after `provider:`), streamed: `on_chunk` sees each chunk as it
        arrives; raises ProviderError (a stream cut short is a retryable `StreamInterrupted`)."""
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


def html_title(body: str) -> str | None:
    """An HTML error page's title (a proxy's or a load balancer's page, not the API's JSON error)."""
    if not body.lstrip().startswith("<"):
        return None
    found = re.search(r"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    return found.group(1).strip()[:80] if found else "untitled"


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


def stream_interrupted(provider: str, what: str) -> ProviderError:
    """A streamed reply that stopped before its end: retried (the partial text is dropped with the attempt)."""
    return ProviderError(f"{provider} stream ended early: {what}", type="StreamInterrupted")


def estimated_input_tokens(request: LlmRequest) -> int:
    """A rough bound of the request's input tokens (about 4 characters a token): the budget check's estimate,
    and the input count of a streamed reply that ended without usage."""
    text = request.system + "".join(
        m.content + json.dumps([c.arguments for c in m.tool_calls]) for m in request.messages
    )
    schemas = sum(len(json.dumps(spec.parameters)) + len(spec.description) for spec in request_tool_specs(request))
    return (len(text) + schemas) // CHARS_PER_TOKEN + 1


def estimate_usage(provider: str, request: LlmRequest, response: LlmResponse) -> LlmResponse:
    """A streamed reply that ended without a usage block (some OpenAI-compatible servers ignore
    `stream_options.include_usage`): count its tokens at about 4 characters a token, say so in a warning, and
    keep the reply (the call was made and paid; retrying would pay it again)."""
    written = response.content + "".join(c.name + json.dumps(c.arguments) for c in response.tool_calls)
    response.input_tokens = estimated_input_tokens(request)
    response.output_tokens = max(1, len(written) // CHARS_PER_TOKEN)
    response.warnings.append(
        f"{provider} sent no usage with its streamed reply: its {response.input_tokens}+{response.output_tokens} "
        "tokens are estimated (about 4 characters a token)"
    )
    return response


def is_stream(headers: Mapping[str, str]) -> bool:
    """Whether a reply asked for as a stream is one (`text/event-stream`); a server that does not stream answers
    JSON, and a proxy in the way may answer anything."""
    return headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


class _Body(Protocol):
    async def aread(self) -> bytes: ...


async def whole_reply(provider: str, response: _Body, required: tuple[str, ...]) -> dict[str, Any]:
    """The body of a reply that came whole, as the API's JSON object with the fields the product reads. A body cut
    short, an HTML page, text, or JSON of another shape is a malformed reply (retried), saying which."""
    try:
        raw = await response.aread()
    except STREAM_ERRORS as exc:
        raise malformed(provider, f"the body was cut short ({type(exc).__name__}: {exc})") from None
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        title = html_title(text)
        what = f"an HTML page ({title!r})" if title is not None else f"text ({text.strip()[:80]!r})"
        raise malformed(provider, f"{what}, not the API's JSON") from None
    if not isinstance(data, dict):
        raise malformed(provider, f"not the API's shape: a JSON {type(data).__name__}, not an object")
    if missing := [name for name in required if name not in data]:
        has = ", ".join(sorted(data)) or "nothing"
        raise malformed(provider, f"not the API's shape: no {', '.join(missing)} (the JSON has {has})")
    return data
