"""Usage accounting on the task state: what each model call consumed, per provider:model."""

from __future__ import annotations

from workflows.models import AgentRole, LlmResponse, ModelUsage, TaskState


def record_reply(state: TaskState, role: AgentRole, reply: LlmResponse) -> None:
    usage = state.usage.setdefault(reply.model, ModelUsage())
    usage.calls += 1
    usage.input_tokens += reply.input_tokens
    usage.output_tokens += reply.output_tokens
    state.models[role] = reply.model


def total_tokens(state: TaskState) -> int:
    return sum(u.input_tokens + u.output_tokens for u in state.usage.values())
