"""Payloads that accept exactly what their JSON Schema allows: the contract's models and the HTTP bodies.

Pydantic's default (lax) mode takes `"5"` or `true` for an integer and `"5"` for a number; JSON Schema does not.
Its strict mode refuses `3.0` for an integer; JSON Schema calls 3.0 an integer. `SchemaStrict` is strict, with
integral numbers turned into integers first, so what the OpenAPI documents publish, what the gateway accepts and
what the workflow accepts from the `temporal` CLI are one rule. Sandbox-safe: pydantic only.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# What `str.strip()` removes, spelled for every regex dialect: `\s` differs between them (ECMA-262 and Rust leave
# out U+001C..U+001F, which Python counts as whitespace), so `\S` would publish more than the validators accept.
PYTHON_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{PYTHON_WHITESPACE}]"  # published next to validators that refuse blank text: the schema says it too


class SchemaStrict(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False)  # JSON has no NaN or Infinity (Python's json does)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ints = {name for name, field in cls.model_fields.items() if field.annotation in (int, int | None)}
        return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in data.items()}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Text that must hold something besides whitespace; the schema publishes the same rule as a pattern.
NotBlankStr = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": NOT_BLANK})]
