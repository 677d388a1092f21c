"""The `llm_chat` activity: one chat turn with tools, on the provider the model id names (activities/providers).

API keys come from the worker's environment, never from the workflow. Under LLM_MODE=auto a role whose provider
has no key uses the built-in offline model (with a warning the task records); LLM_MODE=live refuses instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from activities.metrics import instruments, outcome
from activities.providers import REGISTRY, ChatProvider
from activities.providers.base import ProviderError
from workflows.models import LLM_ACTIVITY, AgentRole, LlmRequest, LlmResponse, Provider, parse_model_id

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = timedelta(seconds=3)


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


def missing_keys(settings: WorkerSettings) -> list[str]:
    """Environment variables the configured default models need but that are not set."""
    providers = {parse_model_id(settings.default_model(role))[0] for role in AgentRole}
    return sorted(
        str(REGISTRY[p].key_env) for p in providers if REGISTRY[p].key_env and not REGISTRY[p].api_key(settings)
    )


class LlmActivities:
    """Holds one client per provider (created on first use, closed by `aclose`) and the worker's settings."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._providers: dict[Provider, ChatProvider] = {}

    def resolve_model(self, request: LlmRequest) -> tuple[str, str | None]:
        """(provider:model to call, warning) under LLM_MODE; `auto` falls back to offline when a key is missing."""
        settings = self._settings
        model = request.model or settings.default_model(request.role)
        provider, _ = parse_model_id(model)
        implementation = REGISTRY[provider]
        if settings.llm_mode == "offline":
            return Provider.OFFLINE.value, None
        env = implementation.key_env
        if env is None or implementation.api_key(settings):
            return model, None
        if settings.llm_mode == "live":
            raise ApplicationError(f"{env} is not set and LLM_MODE=live", type="MissingApiKey", non_retryable=True)
        warning = f"{env} is not set: {request.role} used the built-in offline model instead of {model}"
        logger.warning(warning)
        return Provider.OFFLINE.value, warning

    def _provider(self, provider: Provider) -> ChatProvider:
        if provider not in self._providers:
            self._providers[provider] = REGISTRY[provider](self._settings)
        return self._providers[provider]

    @activity.defn(name=LLM_ACTIVITY)
    async def chat(self, request: LlmRequest) -> LlmResponse:
        started = time.monotonic()
        model, warning = self.resolve_model(request)
        provider, name = parse_model_id(model)
        labels = {"provider": provider.value, "model": name}
        metrics = instruments()
        result = "ok"
        try:
            response = await _heartbeating(self._provider(provider).chat(name, request))
            if not response.content.strip() and not response.tool_calls:
                raise ProviderError(f"{response.model} returned an empty reply", type="MalformedReply")
        except BaseException as exc:
            result = outcome(exc)[0]
            raise
        finally:
            metrics.llm_calls.add(1, {**labels, "role": request.role.value, "outcome": result})
            metrics.llm_latency.record(time.monotonic() - started, labels)
        response.warning = warning or response.warning
        metrics.llm_tokens.add(max(0, response.input_tokens), {**labels, "kind": "input"})
        metrics.llm_tokens.add(max(0, response.output_tokens), {**labels, "kind": "output"})
        activity.logger.info(
            "llm %s %s: %d tool call(s), %d+%d tokens",
            request.role,
            response.model,
            len(response.tool_calls),
            response.input_tokens,
            response.output_tokens,
        )
        return response

    async def aclose(self) -> None:
        """Close the providers' connection pools (the worker calls this when it stops)."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
