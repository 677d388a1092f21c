"""The providers without a network: message translation, error mapping, LLM_MODE, the offline model."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest

from activities.config import WorkerSettings
from activities.llm import LlmActivities
from activities.providers import REGISTRY, offline
from activities.providers import anthropic as anthropic_provider
from activities.providers import openai as openai_provider
from activities.providers.base import ProviderError, parse_arguments
from workflows.models import AgentRole, ChatMessage, LlmRequest, Provider, ToolCall, ToolName


def test_every_provider_has_an_implementation() -> None:
    assert set(REGISTRY) == set(Provider)


def test_tool_arguments_must_be_a_json_object() -> None:
    assert parse_arguments('{"code": "x"}') == ({"code": "x"}, None)
    assert parse_arguments("[1]") == ({}, "arguments must be a JSON object")
    assert parse_arguments("{oops")[1] is not None and "not valid JSON" in str(parse_arguments("{oops")[1])
    assert parse_arguments(None) == ({}, None)


def test_anthropic_translation_groups_tool_results_into_one_user_turn() -> None:
    messages = [
        ChatMessage(role="user", content="task"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="a", name="lint"), ToolCall(id="b", name="lint")]),
        ChatMessage(role="tool", tool_call_id="a", content="ok"),
        ChatMessage(role="tool", tool_call_id="b", content="bad", is_error=True),
    ]
    out = anthropic_provider.messages(messages)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert [b["type"] for b in out[1]["content"]] == ["tool_use", "tool_use"]  # no empty text block
    assert [(b["tool_use_id"], b["is_error"]) for b in out[2]["content"]] == [("a", False), ("b", True)]


def _status_error(module, status: int, headers: dict[str, str] | None = None):
    request = httpx.Request("POST", "http://fake/v1")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return module.APIStatusError("boom", response=response, body=None)


def _error(module: Any, exc: Any) -> ProviderError:
    translate = openai_provider.error if module is openai else anthropic_provider.error
    return translate(exc)


@pytest.mark.parametrize("module", [openai, anthropic])
def test_provider_errors_map_to_temporal_retry_semantics(module) -> None:
    limited = _error(module, _status_error(module, 429, {"retry-after": "7"}))
    assert limited.type == "RateLimited" and not limited.non_retryable
    assert limited.next_retry_delay == timedelta(seconds=7)
    assert _error(module, _status_error(module, 429, {"retry-after-ms": "1500"})).next_retry_delay == (
        timedelta(seconds=1.5)
    )
    assert _error(module, _status_error(module, 429, {"retry-after": "99999"})).next_retry_delay == (
        timedelta(minutes=5)
    )
    for status in (400, 401, 403, 404, 422):
        assert _error(module, _status_error(module, status)).non_retryable, status
    for status in (408, 500, 502, 503, 529):
        assert not _error(module, _status_error(module, status)).non_retryable, status
    assert ("OPENAI_API_KEY" if module is openai else "ANTHROPIC_API_KEY") in str(
        _error(module, _status_error(module, 401))
    )


def test_llm_mode_resolves_models_and_never_needs_keys_offline() -> None:
    def resolve(**settings: object) -> tuple[str, str | None]:
        llm = LlmActivities(WorkerSettings(_env_file=None, **settings))  # type: ignore[arg-type]
        return llm.resolve_model(LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=[]))

    assert resolve(openai_api_key="sk-x") == ("openai:gpt-4o", None)
    model, warning = resolve()
    assert model == "offline" and warning and "OPENAI_API_KEY is not set" in warning
    assert resolve(llm_mode="offline", openai_api_key="sk-x") == ("offline", None)
    with pytest.raises(Exception, match="LLM_MODE=live"):
        resolve(llm_mode="live")


def test_offline_model_calls_both_tools_then_answers_with_a_labelled_placeholder() -> None:
    prompt = "## Task\nwrite a function that parses ISO-8601 durations\n\n"
    first = offline.reply(
        LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=[ChatMessage(role="user", content=prompt)],
                   tools=[ToolName.SEARCH_KNOWLEDGE, ToolName.LINT])
    )  # fmt: skip
    assert [c.name for c in first.tool_calls] == ["search_knowledge", "lint"] and first.content == ""
    draft = first.tool_calls[1].arguments["code"]
    compile(draft, "draft.py", "exec")  # valid Python
    assert "OFFLINE PLACEHOLDER" in draft and "def parses_iso_durations" in draft
    messages = [ChatMessage(role="user", content=prompt), ChatMessage(role="assistant", tool_calls=first.tool_calls),
                ChatMessage(role="tool", tool_call_id="offline-lint-1", content="pylint score: 10/10")]  # fmt: skip
    final = offline.reply(LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=messages, tools=[]))
    assert final.tool_calls == [] and "```python\n" in final.content and final.model == "offline"
    assert final == offline.reply(LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=messages))
