"""The `llm_chat` activity: one chat turn with tools, on the provider the model id names (activities/providers).

API keys come from the worker's environment, never from the workflow. Under LLM_MODE=auto a role whose provider
has no key uses the built-in offline model (with a warning the task records); LLM_MODE=live refuses instead.

Replies are streamed (activities/providers): the activity heartbeats as chunks arrive and publishes the text in
batches as `llm_delta` events on the task's workflow stream (activities/deltas); the reply it returns, and so
what history records, is the whole reply, as before.

Each reply carries its cost at the worker's price table (`activities.prices`). A request with an `allowance` (what
is left of the task's budget) is refused before the provider is called when the call could exceed it: its bound is
an estimate of the input tokens (about 4 characters a token) plus its `max_tokens`, at the model's price.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from activities.deltas import DeltaPublisher
from activities.metrics import instruments, outcome
from activities.prices import ModelPrice, load_prices
from activities.providers import REGISTRY, ChatProvider
from activities.providers.base import ProviderError, estimated_input_tokens
from orchestrator.live import LivePublisher
from workflows.models import LLM_ACTIVITY, AgentRole, CallAllowance, LlmRequest, LlmResponse, Provider, parse_model_id

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = timedelta(seconds=3)
CHUNK_HEARTBEAT_EVERY = timedelta(seconds=1)


class BudgetExceeded(ApplicationError):
    """The call could exceed what is left of the task's budget; the workflow asks for more before it is made."""

    def __init__(self, message: str, bound: CallAllowance) -> None:
        """`bound`: what the call may spend at most (in the unit that is short), the failure's detail."""
        super().__init__(message, bound.model_dump(exclude_none=True), type="BudgetExceeded", non_retryable=True)


def check_allowance(request: LlmRequest, model: str, price: ModelPrice | None) -> None:
    """Refuse the call (BudgetExceeded) when its bound is above what the task may still spend."""
    allowance = request.allowance
    if allowance is None:
        return
    tokens = estimated_input_tokens(request) + request.max_tokens
    if allowance.tokens is not None and tokens > allowance.tokens:
        raise BudgetExceeded(
            f"the next {request.role} call may use up to {tokens} tokens; {allowance.tokens} are left",
            CallAllowance(tokens=tokens),
        )
    if allowance.usd is None:
        return
    if price is None:
        raise ApplicationError(
            f"{model} has no price, so the task's budget_usd cannot be kept: add it to MODEL_PRICES_FILE",
            type="NoPrice",
            non_retryable=True,
        )
    bound = price.cost(input_tokens=tokens - request.max_tokens, output_tokens=request.max_tokens)
    if bound > allowance.usd:
        left = max(0.0, allowance.usd)
        raise BudgetExceeded(
            f"the next {request.role} call on {model} may cost up to ${bound:.6f}; ${left:.6f} is left",
            CallAllowance(usd=bound),
        )


class ChunkHeartbeat:
    """Heartbeats as a streamed reply's chunks arrive (at most once every CHUNK_HEARTBEAT_EVERY)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= CHUNK_HEARTBEAT_EVERY.total_seconds():
            self._last = now
            activity.heartbeat()


T = TypeVar("T")


async def heartbeating(call: Awaitable[T]) -> T:
    """Heartbeat while a call runs (a provider's: also before its first chunk and for a provider that does not
    stream; an MCP tool's), so a crashed worker's call is retried after the heartbeat timeout."""
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY.total_seconds())
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


def cost_of(response: LlmResponse, price: ModelPrice | None) -> float | None:
    """USD of a reply: fresh input, cached input and cache writes each at their own price."""
    if price is None:
        return None
    fresh = max(0, response.input_tokens - response.cached_input_tokens - response.cache_write_tokens)
    return price.cost(fresh, response.output_tokens, response.cached_input_tokens, response.cache_write_tokens)


def missing_keys(settings: WorkerSettings) -> list[str]:
    """Environment variables the configured default models need but that are not set."""
    providers = {parse_model_id(settings.default_model(role))[0] for role in AgentRole}
    return sorted(
        str(REGISTRY[p].key_env) for p in providers if REGISTRY[p].key_env and not REGISTRY[p].api_key(settings)
    )


class LlmActivities:
    """Holds one client per provider (created on first use, closed by `aclose`) and the worker's settings."""

    def __init__(self, settings: WorkerSettings, live: LivePublisher | None = None) -> None:
        """Raises PriceFileError when MODEL_PRICES_FILE is unusable (the worker refuses to start). `live`: the
        worker's live channel, where calls publish their streamed text (orchestrator/live.py)."""
        self._settings = settings
        self._live = live
        self._providers: dict[Provider, ChatProvider] = {}
        self._prices = load_prices(settings.model_prices_file)

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
        price = self._prices.get(model)
        check_allowance(request, model, price)
        provider, name = parse_model_id(model)
        labels = {"provider": provider.value, "model": name}
        metrics = instruments()
        result = "ok"
        try:
            interval = timedelta(milliseconds=self._settings.llm_delta_interval_ms)
            async with DeltaPublisher(request, interval, self._live) as deltas:
                beat = ChunkHeartbeat()

                def on_chunk(text: str) -> None:
                    beat()
                    deltas.add(text)

                response = await heartbeating(self._provider(provider).chat(name, request, on_chunk))
            if not response.content.strip() and not response.tool_calls:
                raise ProviderError(f"{response.model} returned an empty reply", type="MalformedReply")
        except BaseException as exc:
            result = outcome(exc)[0]
            raise
        finally:
            metrics.llm_calls.add(1, {**labels, "role": request.role.value, "outcome": result})
            metrics.llm_latency.record(time.monotonic() - started, labels)
        if warning:
            response.warnings.insert(0, warning)
        response.streams_deltas = self._settings.llm_delta_interval_ms > 0
        response.cost_usd = cost_of(response, price)
        if response.cost_usd is None:
            response.warnings.append(f"{model} has no price: its cost is unknown (add it to MODEL_PRICES_FILE)")
        else:
            metrics.llm_cost.record(response.cost_usd, labels)
        metrics.llm_tokens.add(max(0, response.input_tokens), {**labels, "kind": "input"})
        metrics.llm_tokens.add(max(0, response.cached_input_tokens), {**labels, "kind": "cached_input"})
        metrics.llm_tokens.add(max(0, response.output_tokens), {**labels, "kind": "output"})
        activity.logger.info(
            "llm %s %s: %d tool call(s), %d+%d tokens (%d cached), $%s",
            request.role,
            response.model,
            len(response.tool_calls),
            response.input_tokens,
            response.output_tokens,
            response.cached_input_tokens,
            "?" if response.cost_usd is None else f"{response.cost_usd:.6f}",
        )
        return response

    async def aclose(self) -> None:
        """Close the providers' connection pools (the worker calls this when it stops)."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
