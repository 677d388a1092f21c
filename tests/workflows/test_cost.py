"""The cost ledger end to end: dollars from the providers' own usage numbers, cached tokens at the cached price,
Anthropic prompt caching, a model without a price (fake providers, real SDKs, real dev server)."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from activities.config import WorkerSettings
from activities.prices import DEFAULT_PRICES
from testbed.llm_server import FakeLlmServer
from tests.support import product_worker, start_task
from workflows.models import SA_COST_USD, SA_LINT_GATE, TaskStatus

LONG_CONTEXT = "\n".join(f"def helper_{n}(value: int) -> int:\n    return value + {n}\n" for n in range(150))


def _expected(fake: FakeLlmServer) -> dict[str, float]:
    """Dollars per model, recomputed from the raw usage blocks the fake providers sent."""
    out: dict[str, float] = {}
    for record in fake.requests:
        if record["status"] != 200:
            continue
        usage, model = record["usage"], f"{record['provider']}:{record['body']['model']}"
        price = DEFAULT_PRICES[model]
        if record["provider"] == "openai":
            cached = usage["prompt_tokens_details"]["cached_tokens"]
            cost = price.cost(usage["prompt_tokens"] - cached, usage["completion_tokens"], cached)
        else:
            cost = price.cost(
                usage["input_tokens"],
                usage["output_tokens"],
                usage["cache_read_input_tokens"],
                usage["cache_creation_input_tokens"],
            )
        out[model] = out.get(model, 0.0) + cost
    return out


async def test_dollars_follow_the_providers_usage_exactly(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue, feedback_window_seconds=0, code_context=LONG_CONTEXT)
    final = await handle.result()
    expected = _expected(fake_llm)
    assert set(expected) == set(final.usage) == {"openai:gpt-4o-mini", "openai:gpt-4o", "anthropic:claude-sonnet-4-6"}
    for model, dollars in expected.items():
        assert final.usage[model].cost_usd == pytest.approx(dollars, rel=1e-12), model
    assert final.cost_usd == pytest.approx(sum(expected.values()), rel=1e-12)
    assert final.budget.spent_usd == final.cost_usd

    # the code agent's second call re-sent the long context: OpenAI "cached" it, billed at $1.25/M, not $2.50/M
    code_usage = final.usage["openai:gpt-4o"]
    assert code_usage.cached_input_tokens > 1024 and code_usage.calls == 2
    uncached = DEFAULT_PRICES["openai:gpt-4o"].cost(code_usage.input_tokens, code_usage.output_tokens)
    assert code_usage.cost_usd is not None and code_usage.cost_usd < uncached

    # Anthropic: the stable prefix was marked, written on the first docs call and read on the second
    anthropic = [r for r in fake_llm.requests if r["provider"] == "anthropic" and r["status"] == 200]
    first_turn = anthropic[0]["body"]["messages"][0]["content"]
    assert first_turn[0]["cache_control"] == {"type": "ephemeral"}
    assert [r["usage"]["cache_creation_input_tokens"] > 0 for r in anthropic] == [True, False]
    assert [r["usage"]["cache_read_input_tokens"] > 0 for r in anthropic] == [False, True]
    assert (
        final.usage["anthropic:claude-sonnet-4-6"].cached_input_tokens
        == anthropic[1]["usage"]["cache_read_input_tokens"]
    )

    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(SA_COST_USD) == pytest.approx(final.cost_usd)
    assert attrs.get(SA_LINT_GATE) == "passed"


async def test_a_model_without_a_price_costs_null_and_says_so(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue, feedback_window_seconds=0, code_model="openai:gpt-unlisted")
    final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED
    assert final.usage["openai:gpt-unlisted"].cost_usd is None and final.cost_usd is None
    assert final.usage["openai:gpt-4o-mini"].cost_usd is not None  # the others are still known
    assert "openai:gpt-unlisted has no price: its cost is unknown (add it to MODEL_PRICES_FILE)" in final.warnings
    assert (await handle.describe()).typed_search_attributes.get(SA_COST_USD) is None


async def test_a_usd_budget_cannot_be_kept_with_a_model_without_a_price(
    client: Client, worker: Worker, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    handle = await start_task(client, task_queue, code_model="openai:gpt-unlisted", budget_usd=5.0)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "openai:gpt-unlisted has no price, so the task's budget_usd cannot be kept" in str(failure.value.cause)
    assert fake_llm.total_served == 1  # the planner; the unpriced call was never made


async def test_prompt_caching_can_be_turned_off(
    client: Client, fake_llm: FakeLlmServer, task_queue: str, worker_settings: WorkerSettings
) -> None:
    settings = worker_settings.model_copy(update={"anthropic_prompt_caching": False})
    async with product_worker(client, settings):
        final = await (await start_task(client, task_queue, feedback_window_seconds=0)).result()
    anthropic = [r for r in fake_llm.requests if r["provider"] == "anthropic"]
    assert all(isinstance(r["body"]["messages"][0]["content"], str) for r in anthropic)
    assert final.usage["anthropic:claude-sonnet-4-6"].cached_input_tokens == 0
