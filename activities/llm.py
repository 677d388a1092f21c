"""The `llm_chat` activity: one chat turn with tools, on OpenAI, Anthropic or the built-in offline model.

The SDKs' own retries are off (`max_retries=0`): Temporal's retry policy owns them. Provider errors are mapped
to Temporal semantics: 429 retries after the server's Retry-After, other 4xx are non-retryable, 5xx, timeouts
and malformed replies are retried. API keys come from the worker's environment, never from the workflow.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import anthropic
import openai
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import offline_model
from activities.config import PROVIDER_KEY_ENV, WorkerSettings
from workflows.models import LLM_ACTIVITY, ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolName

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = timedelta(minutes=5)
HEARTBEAT_EVERY = timedelta(seconds=3)
TOOL_SPECS: dict[ToolName, dict[str, Any]] = {
    ToolName.SEARCH_KNOWLEDGE: {
        "description": "Search the team's knowledge base (indexed code and docs) for snippets relevant to a query.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for, in words or identifiers"},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "how many snippets"},
            },
            "required": ["query"],
        },
    },
    ToolName.LINT: {
        "description": "Run pylint on a complete Python module (the code is never executed). "
        "Returns the score out of 10 and the messages.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "the complete Python module"}},
            "required": ["code"],
        },
    },
}


class ProviderError(ApplicationError):
    """A provider call failed; `non_retryable` and `next_retry_delay` carry what Temporal should do."""


def _retry_after(headers: Mapping[str, str]) -> timedelta | None:
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


def _provider_error(provider: str, exc: Exception) -> ProviderError:
    """Translate an SDK exception into what Temporal should do about it."""
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        status = exc.status_code
        detail = f"{provider} returned HTTP {status}: {exc.message}"
        if status == 429:
            return ProviderError(detail, type="RateLimited", next_retry_delay=_retry_after(exc.response.headers))
        if status in (401, 403):
            hint = f" (check {PROVIDER_KEY_ENV.get(provider, 'the API key')})"
            return ProviderError(detail + hint, type="AuthenticationFailed", non_retryable=True)
        if status in (408, 409) or status >= 500:
            return ProviderError(
                detail, type="ProviderUnavailable", next_retry_delay=_retry_after(exc.response.headers)
            )
        return ProviderError(detail, type="BadRequest", non_retryable=True)
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError):
        return ProviderError(f"{provider} request timed out", type="ProviderTimeout")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return ProviderError(f"cannot reach {provider}: {exc}", type="ProviderUnavailable")
    return ProviderError(f"{provider} sent a malformed reply: {exc}", type="MalformedReply")


def _parse_arguments(raw: str | None) -> tuple[dict[str, Any], str | None]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return {}, f"arguments are not valid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return {}, "arguments must be a JSON object"
    return value, None


def _openai_messages(request: LlmRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for m in request.messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _anthropic_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Anthropic wants tool results as `tool_result` blocks in one user turn after the assistant's `tool_use`."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content,
                "is_error": m.is_error,
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": "user", "content": m.content})
    return out


async def _heartbeating(call: Awaitable[LlmResponse]) -> LlmResponse:
    """Heartbeat while a provider call runs, so a crashed worker's call is retried after the heartbeat timeout."""
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY.total_seconds())
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


def _require_answer(response: LlmResponse) -> LlmResponse:
    if not response.content.strip() and not response.tool_calls:
        raise ProviderError(f"{response.model} returned an empty reply", type="MalformedReply")
    return response


class LlmActivities:
    """Holds the provider clients (created once per worker) and the worker's settings."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._openai: openai.AsyncOpenAI | None = None
        self._anthropic: anthropic.AsyncAnthropic | None = None

    def resolve_model(self, request: LlmRequest) -> tuple[str, str | None]:
        """(provider:model to call, warning) under LLM_MODE; `auto` falls back to offline when a key is missing."""
        settings = self._settings
        model = request.model or settings.default_model(request.role)
        provider = model.split(":", 1)[0]
        if settings.llm_mode == "offline" or provider == offline_model.OFFLINE_MODEL:
            return offline_model.OFFLINE_MODEL, None
        if settings.api_key(provider):
            return model, None
        env = PROVIDER_KEY_ENV[provider]
        if settings.llm_mode == "live":
            raise ApplicationError(f"{env} is not set and LLM_MODE=live", type="MissingApiKey", non_retryable=True)
        warning = f"{env} is not set: {request.role} used the built-in offline model instead of {model}"
        logger.warning(warning)
        return offline_model.OFFLINE_MODEL, warning

    @activity.defn(name=LLM_ACTIVITY)
    async def chat(self, request: LlmRequest) -> LlmResponse:
        model, warning = self.resolve_model(request)
        provider, _, name = model.partition(":")
        if provider == "openai":
            response = await _heartbeating(self._call_openai(name, request))
        elif provider == "anthropic":
            response = await _heartbeating(self._call_anthropic(name, request))
        else:
            response = offline_model.reply(request)
        response.warning = warning or response.warning
        activity.logger.info(
            "llm %s %s: %d tool call(s), %d+%d tokens",
            request.role,
            response.model,
            len(response.tool_calls),
            response.input_tokens,
            response.output_tokens,
        )
        return _require_answer(response)

    async def aclose(self) -> None:
        """Close the provider clients' connection pools (the worker calls this when it stops)."""
        for client in (self._openai, self._anthropic):
            if client is not None:
                await client.close()
        self._openai = self._anthropic = None

    def _openai_client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            self._openai = openai.AsyncOpenAI(
                api_key=self._settings.api_key("openai"),
                base_url=self._settings.openai_base_url or None,
                max_retries=0,
                timeout=self._settings.llm_request_timeout_seconds,
                http_client=openai.DefaultAioHttpClient(),  # the SDK's aiohttp transport: ~2.5x less CPU per call
            )
        return self._openai

    def _anthropic_client(self) -> anthropic.AsyncAnthropic:
        if self._anthropic is None:
            self._anthropic = anthropic.AsyncAnthropic(
                api_key=self._settings.api_key("anthropic"),
                base_url=self._settings.anthropic_base_url or None,
                max_retries=0,
                timeout=self._settings.llm_request_timeout_seconds,
                http_client=anthropic.DefaultAioHttpClient(),  # the SDK's aiohttp transport: ~2.5x less CPU per call
            )
        return self._anthropic

    async def _call_openai(self, name: str, request: LlmRequest) -> LlmResponse:
        tools = [{"type": "function", "function": {"name": t.value, **TOOL_SPECS[t]}} for t in request.tools]
        try:
            completion = await self._openai_client().chat.completions.create(
                model=name,
                messages=_openai_messages(request),  # type: ignore[arg-type]
                tools=tools or openai.omit,  # type: ignore[arg-type]
                max_completion_tokens=request.max_tokens,
            )
        except openai.OpenAIError as exc:
            raise _provider_error("openai", exc) from None
        if not completion.choices:
            raise ProviderError("openai returned no choices", type="MalformedReply")
        message = completion.choices[0].message
        warning = None
        if completion.choices[0].finish_reason == "length":  # kept: a retry would stop at the same limit
            warning = (
                f"openai:{name} stopped at the length limit (max_tokens {request.max_tokens}): the answer is cut short"
            )
        calls = []
        for call in message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            arguments, error = _parse_arguments(function.arguments)
            calls.append(ToolCall(id=call.id, name=function.name, arguments=arguments, arguments_error=error))
        usage = completion.usage
        return LlmResponse(
            model=f"openai:{name}",
            content=message.content or "",
            tool_calls=calls,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            warning=warning,
        )

    async def _call_anthropic(self, name: str, request: LlmRequest) -> LlmResponse:
        tools = [
            {
                "name": t.value,
                "description": TOOL_SPECS[t]["description"],
                "input_schema": TOOL_SPECS[t]["parameters"],
            }
            for t in request.tools
        ]
        try:
            message = await self._anthropic_client().messages.create(
                model=name,
                system=request.system,
                messages=_anthropic_messages(request.messages),  # type: ignore[arg-type]
                tools=tools or anthropic.omit,  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
            )
        except anthropic.AnthropicError as exc:
            raise _provider_error("anthropic", exc) from None
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content or []:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments, error = (
                    (block.input, None) if isinstance(block.input, dict) else ({}, "arguments must be a JSON object")
                )
                calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments, arguments_error=error))
        return LlmResponse(
            model=f"anthropic:{name}",
            content="\n".join(texts),
            tool_calls=calls,
            input_tokens=message.usage.input_tokens if message.usage else 0,
            output_tokens=message.usage.output_tokens if message.usage else 0,
        )
