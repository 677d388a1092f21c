"""OpenAI (and any OpenAI-compatible server: OPENAI_BASE_URL) through the official SDK: chat completions with tools,
streamed (`stream=True`, `stream_options.include_usage`)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import openai
import pydantic
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
    parse_arguments,
    status_error,
    stream_interrupted,
    whole_reply,
)
from workflows.models import LlmRequest, LlmResponse, ToolCall
from workflows.tools import request_tool_specs

NAME = "openai"


def messages(request: LlmRequest) -> list[dict[str, Any]]:
    """The conversation in OpenAI's shape: a system message first, tool results as `tool` messages."""
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for m in request.messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            calls = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def error(exc: openai.OpenAIError) -> ProviderError:
    if isinstance(exc, openai.APIStatusError):
        return status_error(
            NAME, exc.status_code, exc.message, exc.response.headers, OpenAIProvider.key_env, exc.response.text
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"{NAME} request timed out", type="ProviderTimeout")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"cannot reach {NAME}: {exc}", type="ProviderUnavailable")
    return malformed(NAME, str(exc))


def usage_of(usage: CompletionUsage | None) -> dict[str, int]:
    """The reply's token counts: `prompt_tokens` includes the cached ones, which OpenAI reports apart."""
    if usage is None:
        return {}
    details = usage.prompt_tokens_details
    return {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cached_input_tokens": (details.cached_tokens or 0) if details else 0,
    }


class OpenAIProvider(SdkProvider[openai.AsyncOpenAI]):
    key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    @staticmethod
    def api_key(settings: WorkerSettings) -> str | None:
        return secret(settings.openai_api_key)

    def _new_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self.api_key(self._settings),
            base_url=self._settings.openai_base_url or None,
            max_retries=0,  # Temporal owns retries
            timeout=self._settings.llm_request_timeout_seconds,
            http_client=openai.DefaultAioHttpClient(),  # the SDK's aiohttp transport: ~2.5x less CPU per call
        )

    async def chat(self, model: str, request: LlmRequest, on_chunk: ChunkSink = ignore_chunk) -> LlmResponse:
        tools = [
            {"type": "function", "function": {"name": s.name, "description": s.description, "parameters": s.parameters}}
            for s in request_tool_specs(request)
        ]
        reply = StreamedReply()
        try:
            stream = await self._get_client().chat.completions.create(  # type: ignore[call-overload]
                model=model,
                messages=messages(request),
                tools=tools or openai.omit,
                max_completion_tokens=request.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                if not is_stream(stream.response.headers):  # a server that ignores `stream`: one whole completion
                    body = await whole_reply(NAME, stream.response, ("choices",))
                    whole = completion_reply(ChatCompletion.model_validate(body), model, request)
                    on_chunk(whole.content)  # its text as one chunk
                    return whole
                try:
                    async for chunk in stream:
                        on_chunk(reply.add(chunk))
                except openai.APIConnectionError as exc:  # the connection broke once the reply had begun
                    raise stream_interrupted(NAME, f"after {reply.chunks} chunk(s): {exc}") from None
        except openai.OpenAIError as exc:
            raise error(exc) from None
        except pydantic.ValidationError as exc:
            raise malformed(NAME, str(exc)) from None
        except STREAM_ERRORS as exc:
            raise stream_interrupted(NAME, f"{type(exc).__name__}: {exc}") from None
        return reply.response(model, request)


def completion_reply(completion: ChatCompletion, model: str, request: LlmRequest) -> LlmResponse:
    """The reply of a server that answered with one whole (non-streamed) completion."""
    if not completion.choices:
        raise malformed(NAME, "no choices")
    reply = StreamedReply()
    choice = completion.choices[0]
    reply.text = [choice.message.content or ""]
    reply.finish_reason = choice.finish_reason
    for index, call in enumerate(choice.message.tool_calls or []):
        function = getattr(call, "function", None)
        if function is not None:
            reply.calls[index] = {"id": call.id, "name": function.name, "arguments": [function.arguments]}
    reply.usage = completion.usage
    return reply.response(model, request)


class StreamedReply:
    """The chunks of one streamed chat completion, assembled into the reply the non-streamed call returns.

    Text arrives in pieces and is passed on as it comes; a tool call's `id` and name arrive in its first piece
    and its JSON arguments in fragments, which are joined and parsed once the stream ends (they are not shown
    as they stream). Usage comes in a last chunk with no choices (`stream_options.include_usage`).
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: CompletionUsage | None = None
        self.chunks = 0

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; returns the text it adds."""
        self.chunks += 1
        if chunk.usage is not None:
            self.usage = chunk.usage
        added = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                added += delta.content
            for piece in delta.tool_calls or []:
                call = self.calls.setdefault(piece.index, {"id": "", "name": "", "arguments": []})
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"].append(piece.function.arguments or "")
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        if added:
            self.text.append(added)
        return added

    def response(self, model: str, request: LlmRequest) -> LlmResponse:
        if self.finish_reason is None:
            raise stream_interrupted(NAME, f"no finish_reason after {self.chunks} chunk(s)")
        warnings = []
        if self.finish_reason == "length":  # kept: a retry would stop at the same limit
            limit = request.max_tokens
            warnings.append(f"{NAME}:{model} stopped at the length limit (max_tokens {limit}): the answer is cut short")
        calls = []
        for _, call in sorted(self.calls.items()):
            arguments, problem = parse_arguments("".join(call["arguments"]))
            calls.append(ToolCall(id=call["id"], name=call["name"], arguments=arguments, arguments_error=problem))
        response = LlmResponse(model=f"{NAME}:{model}", content="".join(self.text), tool_calls=calls, warnings=warnings)
        if self.usage is None:
            return estimate_usage(f"{NAME}:{model}", request, response)
        return response.model_copy(update=usage_of(self.usage))
