"""Anthropic through the official SDK: the Messages API with tools, streamed (`messages.stream`)."""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic
import pydantic
from anthropic.types import Message, Usage

from activities.config import WorkerSettings, secret
from activities.providers.base import (
    STREAM_ERRORS,
    ChunkSink,
    ProviderError,
    SdkProvider,
    estimate_usage,
    ignore_chunk,
    is_stream,
    malformed,
    status_error,
    stream_interrupted,
    whole_reply,
)
from workflows.models import ChatMessage, LlmRequest, LlmResponse, ToolCall
from workflows.tools import request_tool_specs

NAME = "anthropic"


def messages(conversation: list[ChatMessage]) -> list[dict[str, Any]]:
    """Anthropic wants tool results as `tool_result` blocks in one user turn after the assistant's `tool_use`."""
    out: list[dict[str, Any]] = []
    for m in conversation:
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content, "is_error": m.is_error}
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


def error(exc: anthropic.AnthropicError) -> ProviderError:
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(
            NAME, exc.status_code, exc.message, exc.response.headers, AnthropicProvider.key_env, exc.response.text
        )
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(f"{NAME} request timed out", type="ProviderTimeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError(f"cannot reach {NAME}: {exc}", type="ProviderUnavailable")
    return malformed(NAME, str(exc))


def usage_of(usage: Usage | None) -> dict[str, int]:
    """The reply's token counts, as the product counts them: Anthropic's `input_tokens` leaves out what was read
    from and written to the prompt cache, so the three add up to every input token."""
    if usage is None:
        return {}
    read, written = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
    return {
        "input_tokens": usage.input_tokens + read + written,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": read,
        "cache_write_tokens": written,
    }


def cache_prefix(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the end of the stable prefix of an agent's conversation (tools, system prompt and the first user turn:
    the task and the code context) with `cache_control`, so every later call of the loop reads it at the cached
    price. (Anthropic caches a prefix from about 1,024 tokens; a shorter one is simply not cached.)"""
    first = conversation[0] if conversation else None
    if first is None or first["role"] != "user" or not isinstance(first["content"], str):
        return conversation
    block = {"type": "text", "text": first["content"], "cache_control": {"type": "ephemeral"}}
    return [{"role": "user", "content": [block]}, *conversation[1:]]


class AnthropicProvider(SdkProvider[anthropic.AsyncAnthropic]):
    key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"

    @staticmethod
    def api_key(settings: WorkerSettings) -> str | None:
        return secret(settings.anthropic_api_key)

    def _new_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=self.api_key(self._settings),
            base_url=self._settings.anthropic_base_url or None,
            max_retries=0,  # Temporal owns retries
            timeout=self._settings.llm_request_timeout_seconds,
            http_client=anthropic.DefaultAioHttpClient(),  # the SDK's aiohttp transport: ~2.5x less CPU per call
        )

    async def chat(self, model: str, request: LlmRequest, on_chunk: ChunkSink = ignore_chunk) -> LlmResponse:
        tools = [
            {"name": s.name, "description": s.description, "input_schema": s.parameters}
            for s in request_tool_specs(request)
        ]
        conversation = messages(request.messages)
        # Mark the prefix only where it pays: a call of a tool loop (it may be re-sent) or a later step (it reads
        # it back). A one-shot call, like the planner's, would pay the cache-write premium for nothing.
        if self._settings.anthropic_prompt_caching and (request.tools or len(request.messages) > 1):
            conversation = cache_prefix(conversation)
        kwargs: dict[str, Any] = {
            "model": model,
            "system": request.system,
            "messages": conversation,
            "tools": tools or anthropic.omit,
            "max_tokens": request.max_tokens,
        }
        try:
            async with self._get_client().messages.stream(**kwargs) as stream:
                if not is_stream(stream.response.headers):  # a server that ignores `stream`: one whole message
                    message = Message.model_validate(await whole_reply(NAME, stream.response, ("content",)))
                    on_chunk("\n".join(b.text for b in message.content if b.type == "text"))  # as one chunk
                else:
                    events, stopped = 0, False
                    try:
                        async for event in stream:
                            events += 1
                            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                                on_chunk(event.delta.text)
                            else:
                                on_chunk("")
                            stopped = stopped or event.type == "message_stop"
                    except anthropic.APIConnectionError as exc:  # the connection broke once the reply had begun
                        raise stream_interrupted(NAME, f"after {events} event(s): {exc}") from None
                    if not stopped:
                        raise stream_interrupted(NAME, f"no message_stop after {events} event(s)")
                    message = await stream.get_final_message()
        except anthropic.AnthropicError as exc:
            raise error(exc) from None
        except pydantic.ValidationError as exc:
            raise malformed(NAME, str(exc)) from None
        except STREAM_ERRORS as exc:
            raise stream_interrupted(NAME, f"{type(exc).__name__}: {exc}") from None
        return message_reply(message, model, request)


def message_reply(message: Message, model: str, request: LlmRequest) -> LlmResponse:
    """The reply a (streamed or whole) message makes; tool inputs come whole (the SDK joins their JSON pieces)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content or []:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            is_object = isinstance(block.input, dict)
            calls.append(
                ToolCall(
                    id=block.id,
                    name=block.name,
                    arguments=block.input if is_object else {},
                    arguments_error=None if is_object else "arguments must be a JSON object",
                )
            )
    response = LlmResponse(model=f"{NAME}:{model}", content="\n".join(texts), tool_calls=calls)
    usage = getattr(message, "usage", None)
    if usage is None or not usage.output_tokens:
        return estimate_usage(f"{NAME}:{model}", request, response)
    return response.model_copy(update=usage_of(usage))
