"""What the interop tests share: the model name and the worker's environment, as a user would set it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client

from testbed.llama_server import API_KEY, LlamaServer
from tests.support import TEST_API_KEY

MODEL = "openai:smollm2-135m-instruct"  # llama-server serves one model whatever the name; the name is what we log
PRICES = Path(__file__).with_name("prices.toml")  # the local model is free: MODEL_PRICES_FILE says so
SpawnWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def worker_environment(
    client: Client, task_queue: str, llama: LlamaServer, memory_api_url: str, api_key: str = API_KEY
) -> dict[str, str]:
    """Every role on the OpenAI provider, pointed at llama-server, as a user would configure it."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "LLM_MODE": "live",
        "PLANNER_MODEL": MODEL,
        "CODE_MODEL": MODEL,
        "DOC_MODEL": MODEL,
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": f"{llama.base_url}/v1",
        "LLM_REQUEST_TIMEOUT_SECONDS": "170",  # CPU inference of up to max_tokens on 2 cores
        "MEMORY_API_URL": memory_api_url,
        "MEMORY_API_KEY": TEST_API_KEY,
        "WORKER_METRICS_PORT": "0",
        "LINT_POOL_SIZE": "1",
        "MODEL_PRICES_FILE": str(PRICES),
    }
