"""The price table: defaults, the operator's file, and the clear refusals of a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.prices import DEFAULT_PRICES, ModelPrice, PriceFileError, load_prices


def test_costs_are_computed_from_the_table_exactly() -> None:
    gpt4o = DEFAULT_PRICES["openai:gpt-4o"]
    # 1,000 fresh input tokens at $2.50/M, 2,000 cached at $1.25/M, 500 output at $10/M
    assert gpt4o.cost(input_tokens=1_000, output_tokens=500, cached_input_tokens=2_000) == pytest.approx(0.0100)
    sonnet = DEFAULT_PRICES["anthropic:claude-sonnet-4-6"]
    # cache writes at $3.75/M, reads at $0.30/M
    assert sonnet.cost(100, 10, cached_input_tokens=1_000, cache_write_tokens=1_000) == pytest.approx(
        (100 * 3.00 + 1_000 * 0.30 + 1_000 * 3.75 + 10 * 15.00) / 1e6
    )
    assert ModelPrice(input=1, output=2).cost(1, 1, cached_input_tokens=1, cache_write_tokens=1) == pytest.approx(5e-6)
    assert DEFAULT_PRICES["offline"].cost(10_000, 10_000) == 0


def test_the_file_overrides_and_extends_the_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text('["openai:gpt-4o"]\ninput = 2.0\noutput = 8.0\n\n["openai:my-ft"]\ninput = 1\noutput = 1\n')
    prices = load_prices(toml)
    assert prices["openai:gpt-4o"] == ModelPrice(input=2.0, output=8.0)
    assert prices["openai:my-ft"].output == 1 and prices["anthropic:claude-sonnet-4-6"].input == 3.0
    as_json = tmp_path / "prices.json"
    as_json.write_text('{"anthropic:claude-haiku-4-5": {"input": 0.8, "output": 4, "cache_write": 1}}')
    assert load_prices(as_json)["anthropic:claude-haiku-4-5"].cache_write == 1
    assert load_prices(None) == DEFAULT_PRICES


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.json", '{"openai:gpt-4o": {"input": 1, "output": 2}\n,,}', "p.json, line 2: not valid JSON"),
        ("p.toml", '["openai:gpt-4o"]\ninput = = 1\n', "p.toml: not valid TOML"),
        (
            "p.json",
            '{\n  "openai:x": {"input": -1, "output": 2}\n}',
            "line 2 (openai:x): input: Input should be greater",
        ),
        ("p.toml", '["a"]\ninput = 1\noutput = 1\n\n["b"]\ninput = 1\n', "line 5 (b): output: Field required"),
        (
            "p.json",
            '{"openai:x": {"input": 1, "output": 2, "surprise": 3}}',
            "surprise: Extra inputs are not permitted",
        ),
        ("p.json", '{"openai:x": {"input": "cheap", "output": 2}}', "input: Input should be a valid number"),
        ("p.json", '{"openai:x": {"input": 1e9, "output": 2}}', "input: Input should be less than or equal to 10000"),
        ("p.json", '["openai:gpt-4o"]', "expected a table of models, got list"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceFileError) as refused:
        load_prices(path)
    assert message in str(refused.value), refused.value


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot be read"):
        load_prices(tmp_path / "nope.toml")
