"""Usage accounting on the task state: what each model call consumed and cost, per provider:model, and what is
left of the budget."""

from __future__ import annotations

from typing import Any

from workflows.models import AgentRole, BudgetRaise, CallAllowance, LlmResponse, ModelUsage, TaskState


def _add_cost(total: float | None, cost: float | None) -> float | None:
    """Dollars add up while every call had a price; one without makes the sum unknown (never a guess)."""
    return None if total is None or cost is None else total + cost


def record_reply(state: TaskState, role: AgentRole, reply: LlmResponse) -> None:
    usage = state.usage.setdefault(reply.model, ModelUsage())
    usage.calls += 1
    usage.input_tokens += reply.input_tokens
    usage.output_tokens += reply.output_tokens
    usage.cached_input_tokens += reply.cached_input_tokens
    usage.cost_usd = _add_cost(usage.cost_usd, reply.cost_usd)
    state.models[role] = reply.model
    state.cost_usd = _add_cost(state.cost_usd, reply.cost_usd)
    state.budget.spent_usd = state.cost_usd
    state.budget.spent_tokens = total_tokens(state)


def total_tokens(state: TaskState) -> int:
    return sum(u.input_tokens + u.output_tokens for u in state.usage.values())


def allowance(state: TaskState) -> CallAllowance | None:
    """What the next model call may spend at most, or None when the task has no budget."""
    budget = state.budget
    if budget.budget_usd is None and budget.budget_tokens is None:
        return None
    usd = None if budget.budget_usd is None else budget.budget_usd - (budget.spent_usd or 0.0)
    tokens = None if budget.budget_tokens is None else budget.budget_tokens - budget.spent_tokens
    return CallAllowance(usd=usd, tokens=tokens)


def check_raise(state: TaskState, raise_: BudgetRaise) -> None:
    """Why a `raise_budget` is refused (ValueError), if it is: each new limit must be above what is spent."""
    spent = state.budget
    if raise_.budget_usd is not None and spent.spent_usd is None:
        raise ValueError(
            "this task called a model without a price: its spend in USD is unknown, so a USD budget "
            "cannot be kept; raise budget_tokens instead"
        )
    if raise_.budget_usd is not None and raise_.budget_usd <= (spent.spent_usd or 0.0):
        raise ValueError(f"budget_usd must be above what is spent (${spent.spent_usd or 0.0:.6f})")
    if raise_.budget_tokens is not None and raise_.budget_tokens <= spent.spent_tokens:
        raise ValueError(f"budget_tokens must be above what is spent ({spent.spent_tokens} tokens)")


def record_need(state: TaskState, bound: Any) -> None:
    """`budget.needed_*`: the least limits a refused call needs (spent + its bound, from the BudgetExceeded
    details), until a call goes ahead (`bound` None)."""
    call = CallAllowance.model_validate(bound) if isinstance(bound, dict) else CallAllowance()
    budget = state.budget
    budget.needed_usd = None if call.usd is None else (budget.spent_usd or 0.0) + call.usd
    budget.needed_tokens = None if call.tokens is None else budget.spent_tokens + call.tokens


def apply_raise(state: TaskState, raise_: BudgetRaise) -> None:
    if raise_.budget_usd is not None:
        state.budget.budget_usd = raise_.budget_usd
    if raise_.budget_tokens is not None:
        state.budget.budget_tokens = raise_.budget_tokens
