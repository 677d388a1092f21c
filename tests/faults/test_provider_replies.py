"""A provider that cuts its body mid-way, answers an HTML page, or answers 200 with JSON that is not the API's
shape: the real SDKs read it, the product calls it a malformed reply (retried), then fails naming the provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.config import WorkerSettings
from activities.providers.anthropic import AnthropicProvider
from activities.providers.base import ChatProvider, ProviderError
from activities.providers.openai import OpenAIProvider
from testbed.broken_http import BrokenHttpServer
from testbed.product import fake_provider_settings
from tests.support import product_worker, start_task
from workflows.coding_task import CodingTask
from workflows.models import AgentRole, ChatMessage, LlmRequest, TaskStatus

PROVIDERS: dict[str, type[ChatProvider]] = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}
# reply -> (error type, what the message says was wrong)
EXPECTED = {
    "cut-body": ("MalformedReply", "sent a malformed reply: the body was cut short"),
    "html-200": ("MalformedReply", "sent a malformed reply: an HTML page ('502 Bad Gateway'), not the API's JSON"),
    "wrong-shape": (
        "MalformedReply",
        "sent a malformed reply: not the API's shape: no {field} (the JSON has data, result)",
    ),
    "html-page": ("ProviderUnavailable", "returned HTTP 502 with an HTML page, not the API's JSON: '502 Bad Gateway'"),
}
FIELD = {"openai": "choices", "anthropic": "content"}


@pytest.fixture
def broken(request: pytest.FixtureRequest) -> Iterator[BrokenHttpServer]:
    server = BrokenHttpServer(request.param).start()
    yield server
    server.stop()


@pytest.mark.parametrize("broken", list(EXPECTED), indirect=True)
@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_broken_reply_is_a_retryable_error_naming_the_provider_and_the_fault(
    broken: BrokenHttpServer, provider: str
) -> None:
    settings = fake_provider_settings(broken.base_url, llm_request_timeout_seconds=5)
    client = PROVIDERS[provider](settings)
    request = LlmRequest(role=AgentRole.PLANNER, system="plan", messages=[ChatMessage(role="user", content="x")])
    try:
        with pytest.raises(ProviderError) as raised:
            await client.chat("some-model", request)
    finally:
        await client.aclose()
    kind, said = EXPECTED[broken.reply]
    assert raised.value.type == kind and not raised.value.non_retryable  # Temporal retries it
    assert raised.value.message.startswith(f"{provider} {said.format(field=FIELD[provider])}"), raised.value.message
    assert broken.requests == 1


@pytest.mark.parametrize("broken", ["wrong-shape"], indirect=True)
@pytest.mark.timeout(180)
async def test_a_provider_that_keeps_answering_garbage_fails_the_task_clearly(
    client: Client, worker_settings: WorkerSettings, broken: BrokenHttpServer, task_queue: str
) -> None:
    settings = worker_settings.model_copy(update={"openai_base_url": f"{broken.base_url}/v1"})
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query(CodingTask.status)
    assert state.task_status == TaskStatus.FAILED
    assert broken.requests == 6  # the planner's call, retried by the activity's policy until it gave up
    assert any("openai sent a malformed reply: not the API's shape: no choices" in e for e in state.errors), (
        state.errors
    )
