"""The one input of a signal, query or update, checked by the workflow rather than by the SDK.

Any client can send a handler no input or several (`temporal workflow signal --name feedback` without `--input`,
`handle.signal("feedback", args=[a, b])`); the SDK then calls the handler with as many arguments, and the call fails
with Python's `TypeError` (for a signal, every workflow task after it, forever). Handlers that take `*inputs` and
read them through `one_input` answer a message naming what they expect instead. Sandbox-safe: pydantic only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from workflows.tools import validation_problems

M = TypeVar("M", bound=BaseModel)

INVALID_INPUT = "InvalidInput"  # the ApplicationError type of every refusal here


def expected_shape(model: type[BaseModel]) -> str:
    """`a JSON object with rating (required), comment`: what a caller must send."""
    fields = [f"{name} (required)" if field.is_required() else name for name, field in model.model_fields.items()]
    return f"a JSON object with {', '.join(fields)}"


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_INPUT, non_retryable=True)


def no_input(handler: str, inputs: Sequence[Any]) -> None:
    """A handler that takes no input (the `status` query) refuses one."""
    if inputs:
        raise invalid(f"{handler} takes no input; got {len(inputs)}")


def one_input(handler: str, inputs: Sequence[Any], model: type[M], default: M | None = None) -> M:
    """The handler's one input as `model`; `default` when none was sent and the handler has one. Raises an
    `InvalidInput` ApplicationError naming the handler and what it expects."""
    if not inputs and default is not None:
        return default
    if len(inputs) != 1:
        raise invalid(f"{handler} takes one input, {expected_shape(model)}; got {len(inputs)}")
    try:
        return model.model_validate(inputs[0])
    except ValidationError as exc:
        raise invalid(f"{handler}: {validation_problems(exc)}") from None
