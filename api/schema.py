"""What the OpenAPI documents publish, made true: request bodies that accept exactly what their JSON Schema allows,
and operation ids that the links between routes can name.

Pydantic's default (lax) mode takes `"5"` or `true` for an integer and `"5"` for a number; JSON Schema does not.
Its strict mode refuses `3.0` for an integer; JSON Schema calls 3.0 an integer. `SchemaStrict` is strict, with
integral numbers turned into integers first, so the OpenAPI documents of the three apps are the truth.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, model_validator

NOT_BLANK = r"\S"  # published next to validators that refuse blank text, so the schema says it too


class SchemaStrict(BaseModel):
    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ints = {name for name, field in cls.model_fields.items() if field.annotation in (int, int | None)}
        return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in data.items()}


def operation_id(route: APIRoute) -> str:
    """The route function's name (`invoke`, `get_status`, ...) as its OpenAPI operationId: what links name."""
    return route.name
