"""Fast unit tests of the pure pieces: answer parsing, provider translation, error mapping, settings, keys."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import anthropic
import httpx
import openai
import pytest

from activities import offline_model
from activities.config import WorkerSettings
from activities.llm import LlmActivities, _anthropic_messages, _parse_arguments, _provider_error
from api.auth import ApiKeyConfigError, ApiKeyRegistry
from tests.conftest import ROOT
from workflows.coding_task import split_code_answer
from workflows.models import AgentRole, ChatMessage, LlmRequest, ToolCall, ToolName


def test_split_code_answer_takes_the_longest_fenced_block() -> None:
    answer = "Here:\n```python\nx = 1\ny = 2\n```\nand a usage example\n```\nx\n```\nDone."
    code, explanation = split_code_answer(answer)
    assert code == "x = 1\ny = 2\n"
    assert explanation == "Here:\n\nand a usage example\n\nDone."
    assert split_code_answer("print('no fence')") == ("print('no fence')", "")


def test_tool_arguments_must_be_a_json_object() -> None:
    assert _parse_arguments('{"code": "x"}') == ({"code": "x"}, None)
    assert _parse_arguments("[1]") == ({}, "arguments must be a JSON object")
    assert _parse_arguments("{oops")[1] is not None and "not valid JSON" in str(_parse_arguments("{oops")[1])
    assert _parse_arguments(None) == ({}, None)


def test_anthropic_translation_groups_tool_results_into_one_user_turn() -> None:
    messages = [
        ChatMessage(role="user", content="task"),
        ChatMessage(role="assistant", tool_calls=[ToolCall(id="a", name="lint"), ToolCall(id="b", name="lint")]),
        ChatMessage(role="tool", tool_call_id="a", content="ok"),
        ChatMessage(role="tool", tool_call_id="b", content="bad", is_error=True),
    ]
    out = _anthropic_messages(messages)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert [b["type"] for b in out[1]["content"]] == ["tool_use", "tool_use"]  # no empty text block
    assert [(b["tool_use_id"], b["is_error"]) for b in out[2]["content"]] == [("a", False), ("b", True)]


def _status_error(module, status: int, headers: dict[str, str] | None = None):
    request = httpx.Request("POST", "http://fake/v1")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return module.APIStatusError("boom", response=response, body=None)


@pytest.mark.parametrize("module", [openai, anthropic])
def test_provider_errors_map_to_temporal_retry_semantics(module) -> None:
    limited = _provider_error("openai", _status_error(module, 429, {"retry-after": "7"}))
    assert limited.type == "RateLimited" and not limited.non_retryable
    assert limited.next_retry_delay == timedelta(seconds=7)
    assert _provider_error("openai", _status_error(module, 429, {"retry-after-ms": "1500"})).next_retry_delay == (
        timedelta(seconds=1.5)
    )
    assert _provider_error("openai", _status_error(module, 429, {"retry-after": "99999"})).next_retry_delay == (
        timedelta(minutes=5)
    )
    for status in (400, 401, 403, 404, 422):
        assert _provider_error("openai", _status_error(module, status)).non_retryable, status
    for status in (408, 500, 502, 503, 529):
        assert not _provider_error("openai", _status_error(module, status)).non_retryable, status
    assert "OPENAI_API_KEY" in str(_provider_error("openai", _status_error(module, 401)))


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


def test_worker_refuses_to_start_in_live_mode_without_keys(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LLM_MODE": "live", "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    run = subprocess.run([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "LLM_MODE=live but ANTHROPIC_API_KEY, OPENAI_API_KEY not set" in run.stderr


def test_offline_model_calls_both_tools_then_answers_with_a_labelled_placeholder() -> None:
    prompt = "## Task\nwrite a function that parses ISO-8601 durations\n\n"
    first = offline_model.reply(
        LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=[ChatMessage(role="user", content=prompt)],
                   tools=[ToolName.SEARCH_KNOWLEDGE, ToolName.LINT])
    )  # fmt: skip
    assert [c.name for c in first.tool_calls] == ["search_knowledge", "lint"] and first.content == ""
    draft = first.tool_calls[1].arguments["code"]
    compile(draft, "draft.py", "exec")  # valid Python
    assert "OFFLINE PLACEHOLDER" in draft and "def parses_iso_durations" in draft
    messages = [ChatMessage(role="user", content=prompt), ChatMessage(role="assistant", tool_calls=first.tool_calls),
                ChatMessage(role="tool", tool_call_id="offline-lint-1", content="pylint score: 10/10")]  # fmt: skip
    final = offline_model.reply(LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=messages, tools=[]))
    assert final.tool_calls == [] and "```python\n" in final.content and final.model == "offline"
    assert final == offline_model.reply(LlmRequest(role=AgentRole.CODE_GENERATION, system="", messages=messages))


def test_api_key_registry_parses_tenants_and_refuses_unsafe_keys(tmp_path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# tenants\ncarol=carol-key-0123456789abcdef\n")
    registry = ApiKeyRegistry.from_env(
        {
            "ORCHESTRATOR_API_KEY": "default-key-0123456789abcdef",
            "ORCHESTRATOR_API_KEYS": "alice=alice-key-0123456789abcdef, bob=bob-key-0123456789abcdef",
            "ORCHESTRATOR_API_KEYS_FILE": str(keys_file),
        }
    )
    assert registry.tenant_for("alice-key-0123456789abcdef") == "alice"
    assert registry.tenant_for("carol-key-0123456789abcdef") == "carol"
    assert registry.tenant_for("default-key-0123456789abcdef") == "default"
    assert registry.tenant_for("alice-key-0123456789abcdeX") is None
    assert registry.tenant_for("") is None and registry.tenant_for(None) is None
    for bad in ({}, {"ORCHESTRATOR_API_KEY": "short"}, {"ORCHESTRATOR_API_KEY": "changeme-changeme-changeme"},
                {"ORCHESTRATOR_API_KEY": "a" * 40}, {"ORCHESTRATOR_API_KEYS": "no-equals-sign"},
                {"ORCHESTRATOR_API_KEYS": "a=same-key-0123456789abcdef,b=same-key-0123456789abcdef"},
                {"ORCHESTRATOR_API_KEYS": "bad tenant=key-0123456789abcdefgh"},
                {"ORCHESTRATOR_API_KEYS_FILE": str(tmp_path / "missing")}):  # fmt: skip
        with pytest.raises(ApiKeyConfigError):
            ApiKeyRegistry.from_env(bad)
