"""What the OpenAPI documents publish, made true: request bodies that accept exactly what their JSON Schema allows
(`SchemaStrict`, from the contract: the workflow's own payloads follow the same rule), and operation ids that the
links between routes can name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.routing import APIRoute
from pydantic import BeforeValidator, WithJsonSchema

from workflows.strict import NOT_BLANK, PYTHON_WHITESPACE, NotBlankStr, SchemaStrict

__all__ = ["NOT_BLANK", "PYTHON_WHITESPACE", "NotBlankStr", "OptionalQueryBool", "SchemaStrict", "operation_id"]


def operation_id(route: APIRoute) -> str:
    """The route function's name (`invoke`, `get_status`, ...) as its OpenAPI operationId: what links name."""
    return route.name


def _json_boolean(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"
    return value


# An optional query parameter published as a boolean takes what a boolean is in JSON, `true` or `false` (FastAPI
# alone also takes 1, yes, on, ...); absent, it is None (a query string has no null, so none is published).
OptionalQueryBool = Annotated[bool | None, BeforeValidator(_json_boolean), WithJsonSchema({"type": "boolean"})]
