"""Worker observability: the Prometheus endpoint shows Temporal's and the project's metrics; JSON logs carry context."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from orchestrator.telemetry import (
    JsonFormatter,
    TelemetrySettings,
    TemporalContextFilter,
    install_runtime,
    metrics_runtime,
    worker_interceptors,
)
from testbed.llm_server import FakeLlmServer, Fault
from testbed.server import free_port
from tests.support import ROOT, product_worker
from workflows.coding_task import CodingTask
from workflows.models import CodingTaskInput, TaskStatus


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """JSON lines of the `temporalio.activity` and `activities` loggers while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TemporalContextFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("temporalio.activity"), logging.getLogger("activities")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield stream
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


async def test_metrics_endpoint_shows_temporal_and_project_metrics(
    temporal_env: WorkflowEnvironment,
    worker_settings: WorkerSettings,
    fake_llm: FakeLlmServer,
    task_queue: str,
    json_log: io.StringIO,
) -> None:
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    # one rate limit: Temporal retries it after Retry-After, and the retry is counted by cause
    fake_llm.add_fault("openai", Fault(status=429, headers={"retry-after": "0"}))
    workflow_id = f"metrics-{uuid.uuid4().hex[:8]}"
    async with product_worker(client, worker_settings):
        result = await client.execute_workflow(
            CodingTask.run,
            CodingTaskInput(task_description="write an add function", feedback_window_seconds=0),
            id=workflow_id,
            task_queue=task_queue,
        )
        assert result.task_status == TaskStatus.COMPLETED
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    text = response.text
    lines = text.splitlines()

    def samples(name: str, *labels: str) -> list[str]:
        return [
            line
            for line in lines
            if line.startswith(name) and all(label in line for label in labels) and task_queue in line
        ]

    assert any(line.startswith("temporal_") for line in lines)
    assert samples("temporal_activity_execution_latency")
    assert samples("temporal_workflow_completed")
    assert samples("orchestrator_llm_calls", 'provider="openai"', 'model="gpt-4o"', 'outcome="ok"')
    assert samples("orchestrator_llm_calls", 'provider="anthropic"', 'role="documentation"')
    assert samples("orchestrator_llm_calls", 'outcome="RateLimited"')
    assert samples("orchestrator_llm_tokens", 'kind="input"', 'provider="openai"')
    assert samples("orchestrator_llm_tokens", 'kind="output"', 'provider="anthropic"')
    assert samples("orchestrator_llm_latency_bucket", 'le="0.05"')
    assert samples("orchestrator_lint_score_bucket", 'le="10"')
    assert samples("orchestrator_rag_latency_count")
    assert samples("orchestrator_rag_hits_bucket")
    assert samples("orchestrator_activity_failures", 'cause="RateLimited"', 'retryable="true"')
    assert samples("orchestrator_activity_retries", 'activity_type="llm_chat"')

    # JSON logs of the same run carry the workflow id and the activity type
    records = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    mine = [r for r in records if r.get("workflow_id") == workflow_id]
    assert {r.get("activity_type") for r in mine} >= {"llm_chat"}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_interceptors_and_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_METRICS_PORT", "LOG_FORMAT", "OTEL_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    settings = TelemetrySettings(_env_file=None)
    assert settings.worker_metrics_port == 9464
    assert settings.log_format == "text"
    assert settings.otel_enabled is False
    assert len(worker_interceptors(settings)) == 1  # metrics only: tracing is off by default


def test_json_formatter_outside_temporal() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    TemporalContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING"
    assert "workflow_id" not in entry


def test_tracing_is_opt_in() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from temporalio.contrib.opentelemetry import TracingInterceptor

    settings = TelemetrySettings(_env_file=None, otel_enabled=True)
    interceptors = worker_interceptors(settings)
    assert any(isinstance(i, TracingInterceptor) for i in interceptors)


def test_a_taken_metrics_port_does_not_stop_the_worker() -> None:
    port = free_port()
    holder = metrics_runtime(f"127.0.0.1:{port}")
    settings = TelemetrySettings(_env_file=None, worker_metrics_port=port, worker_metrics_host="127.0.0.1")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("orchestrator.telemetry")
    log.addHandler(handler)
    try:
        assert install_runtime(settings) is None
    finally:
        log.removeHandler(handler)
    assert "no worker metrics" in stream.getvalue()
    del holder


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp shows them) of the sockets listening on `port`."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_worker_metrics_listen_on_this_machine_only_by_default(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import sys, time; from orchestrator.telemetry import TelemetrySettings, install_runtime; "
        f"install_runtime(TelemetrySettings(_env_file=None, worker_metrics_port={port})); "
        "print('up', flush=True); time.sleep(60)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_METRICS_")}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        deadline = time.monotonic() + 10
        while not listening_addresses(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0 (00000000)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    finally:
        proc.kill()
        proc.wait()
