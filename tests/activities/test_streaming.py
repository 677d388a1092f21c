"""The providers stream: the real SDKs against the fake server's streaming wire formats (OpenAI `data:` chunks
ending `[DONE]`, Anthropic's message events) assemble the very reply the non-streamed call gives."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.config import WorkerSettings
from activities.deltas import DOUBLE_EVERY, wait_before
from activities.providers.anthropic import AnthropicProvider
from activities.providers.base import ChatProvider, ProviderError
from activities.providers.openai import OpenAIProvider
from testbed.llm_server import FakeLlmServer, Fault
from testbed.product import fake_provider_settings
from workflows.models import AgentRole, ChatMessage, LlmRequest, LlmResponse, ToolName

PROVIDERS: dict[str, tuple[type[ChatProvider], str]] = {
    "openai": (OpenAIProvider, "gpt-4o"),
    "anthropic": (AnthropicProvider, "claude-sonnet-4-6"),
}
TASK = "## Task\nwrite an add function\n"
WITH_TOOLS = LlmRequest(
    role=AgentRole.CODE_GENERATION,
    system="You write Python code.",
    messages=[ChatMessage(role="user", content=TASK)],
    tools=[ToolName.SEARCH_KNOWLEDGE, ToolName.LINT],
)
TEXT_ONLY = WITH_TOOLS.model_copy(update={"tools": []})


def settings(fake: FakeLlmServer) -> WorkerSettings:
    return fake_provider_settings(fake.base_url, llm_request_timeout_seconds=5)


async def call(fake: FakeLlmServer, provider: str, request: LlmRequest, chunks: list[str] | None = None) -> LlmResponse:
    implementation, model = PROVIDERS[provider]
    client = implementation(settings(fake))
    try:
        return await client.chat(model, request, (chunks if chunks is not None else []).append)
    finally:
        await client.aclose()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("request_", [WITH_TOOLS, TEXT_ONLY], ids=["tool_calls", "text"])
async def test_a_streamed_reply_is_the_reply_a_whole_one_gives(
    fake_llm: FakeLlmServer, provider: str, request_: LlmRequest
) -> None:
    fake_llm.piece_chars = 5
    chunks: list[str] = []
    streamed = await call(fake_llm, provider, request_, chunks)
    fake_llm.prompt_cache.clear()  # the second call must see the same (uncached) prompt
    fake_llm.streams = False  # a server that ignores `stream`: the SDK gets one JSON body
    whole_chunks: list[str] = []
    whole = await call(fake_llm, provider, request_, whole_chunks)
    assert streamed == whole and "".join(whole_chunks) == "".join(chunks)  # its text comes as one chunk
    assert streamed.input_tokens > 0 and streamed.output_tokens > 0 and streamed.warnings == []
    assert [r["body"]["stream"] for r in fake_llm.requests] == [True, True]
    if request_.tools:
        assert [c.name for c in streamed.tool_calls] == ["search_knowledge", "lint"]
        assert all(c.arguments and c.arguments_error is None for c in streamed.tool_calls)
        assert "".join(chunks) == ""  # tool-call arguments arrive whole, at the end, never as text
    else:
        assert streamed.content and "".join(chunks) == streamed.content
        assert len([c for c in chunks if c]) > 3  # it came in pieces


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_cut_mid_way_is_a_retryable_failure(fake_llm: FakeLlmServer, provider: str) -> None:
    fake_llm.add_fault(provider, Fault(cut_after=4))
    chunks: list[str] = []
    with pytest.raises(ProviderError) as failure:
        await call(fake_llm, provider, TEXT_ONLY, chunks)
    assert failure.value.type == "StreamInterrupted" and not failure.value.non_retryable
    assert fake_llm.cut == 1 and fake_llm.total_served == 0
    assert chunks  # some text had arrived before the cut: a watcher saw it, under this attempt's number
    again = await call(fake_llm, provider, TEXT_ONLY)  # the retry gets the whole reply
    assert again.content.startswith("".join(chunks)) and fake_llm.total_served == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_without_usage_keeps_the_reply_with_estimated_tokens(
    fake_llm: FakeLlmServer, provider: str
) -> None:
    fake_llm.add_fault(provider, Fault(no_usage=True))
    reply = await call(fake_llm, provider, WITH_TOOLS)
    assert [c.name for c in reply.tool_calls] == ["search_knowledge", "lint"]
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    assert len(reply.warnings) == 1 and "sent no usage" in reply.warnings[0] and "estimated" in reply.warnings[0]


def test_a_long_calls_delta_interval_doubles_so_its_events_grow_with_the_log_of_its_length() -> None:
    interval = timedelta(milliseconds=250)
    assert wait_before(0, interval) == wait_before(DOUBLE_EVERY - 1, interval) == interval
    assert wait_before(DOUBLE_EVERY, interval) == 2 * interval
    assert wait_before(3 * DOUBLE_EVERY, interval) == 8 * interval
    elapsed, events = timedelta(0), 0
    while elapsed < timedelta(minutes=3):  # the longest a call may take (its start-to-close)
        elapsed += wait_before(events, interval)
        events += 1
    assert events < 5 * DOUBLE_EVERY  # a 3-minute call publishes about 170 events, not 720
