"""What a model call costs: a price table per model, in USD per million tokens, read by the worker only.

The defaults below cover the default models and common ones. They were read on 2026-06-01 from the providers'
pricing pages (openai.com/api/pricing, anthropic.com/pricing; verify before you rely on them). An operator
overrides or extends them with MODEL_PRICES_FILE, a JSON or TOML file of the same shape:

    # prices.toml
    ["openai:gpt-4o"]
    input = 2.50
    cached_input = 1.25
    output = 10.00

    ["anthropic:claude-sonnet-4-6"]
    input = 3.00
    cached_input = 0.30    # cache reads
    cache_write = 3.75     # cache creation (Anthropic prompt caching)
    output = 15.00

A model without a price costs `null` (and the task says so in its warnings): never a guessed number. No price
enters a workflow input or history except as the cost of a call that happened.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PER_TOKEN = 1e-6  # prices are per million tokens
MAX_PRICE = 10_000.0  # USD per million tokens: anything above is a typo


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, le=MAX_PRICE, description="USD per million input tokens")
    output: float = Field(ge=0, le=MAX_PRICE, description="USD per million output tokens")
    cached_input: float | None = Field(
        default=None, ge=0, le=MAX_PRICE, description="USD per million cached input tokens (default: input)"
    )
    cache_write: float | None = Field(
        default=None, ge=0, le=MAX_PRICE, description="USD per million cache-creation tokens (default: input)"
    )

    def cost(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0, cache_write_tokens: int = 0
    ) -> float:
        """USD of one call. `input_tokens` excludes the cached and cache-write tokens, counted at their own price."""
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        return PER_TOKEN * (
            input_tokens * self.input
            + cached_input_tokens * cached
            + cache_write_tokens * write
            + output_tokens * self.output
        )


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "offline": ModelPrice(input=0, output=0),
    "openai:gpt-4o": ModelPrice(input=2.50, cached_input=1.25, output=10.00),
    "openai:gpt-4o-mini": ModelPrice(input=0.15, cached_input=0.075, output=0.60),
    "openai:gpt-4.1": ModelPrice(input=2.00, cached_input=0.50, output=8.00),
    "openai:gpt-4.1-mini": ModelPrice(input=0.40, cached_input=0.10, output=1.60),
    "openai:gpt-5.4": ModelPrice(input=2.50, cached_input=0.25, output=15.00),
    "openai:gpt-5.4-mini": ModelPrice(input=0.75, cached_input=0.075, output=4.50),
    "anthropic:claude-sonnet-4-6": ModelPrice(input=3.00, cached_input=0.30, cache_write=3.75, output=15.00),
    "anthropic:claude-sonnet-4-5": ModelPrice(input=3.00, cached_input=0.30, cache_write=3.75, output=15.00),
    "anthropic:claude-opus-4-6": ModelPrice(input=5.00, cached_input=0.50, cache_write=6.25, output=25.00),
    "anthropic:claude-haiku-4-5": ModelPrice(input=1.00, cached_input=0.10, cache_write=1.25, output=5.00),
}


class PriceFileError(ValueError):
    """MODEL_PRICES_FILE cannot be used; the message names the file, the line and what is wrong."""


def _line_of(text: str, key: str) -> int | None:
    """The 1-based line where `key` appears in the file, to point the operator at it."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(rf"""["']?{re.escape(key)}["']?\s*[\]:=]""", line):
            return number
    return None


def load_prices(path: str | Path | None) -> dict[str, ModelPrice]:
    """The defaults, overridden and extended by the file at `path` (JSON or TOML by its suffix)."""
    prices = dict(DEFAULT_PRICES)
    if not path:
        return prices
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"MODEL_PRICES_FILE {path}: cannot be read ({exc})") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PriceFileError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a table of models, got {type(data).__name__}")
    for model, entry in data.items():
        where = f"{path}, line {_line_of(text, model) or '?'} ({model})"
        try:
            prices[model] = ModelPrice.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'price'}: {e['msg']}" for e in exc.errors())
            raise PriceFileError(f"{where}: {problems}") from None
    return prices
