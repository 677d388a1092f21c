"""The memory API down for a whole task, and killed and restarted in the middle of one: the agents are told
"knowledge base unavailable" and the task goes on; after the restart RAG answers again, the worker untouched."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client

from activities.config import WorkerSettings
from testbed.llm_server import FakeLlmServer
from tests.faults.conftest import start_memory_api
from tests.support import Services, free_port, product_worker, start_task, wait_until
from workflows.models import TaskStatus

UNAVAILABLE = "knowledge base unavailable"


def tool_results(fake_llm: FakeLlmServer, provider: str) -> str:
    """What the given provider's model was sent, as one text (the tool results are in it)."""
    return json.dumps([r["body"]["messages"] for r in fake_llm.requests if r["provider"] == provider])


async def test_a_task_with_the_memory_api_down_throughout_completes_and_says_so(
    client: Client, worker_settings: WorkerSettings, fake_llm: FakeLlmServer, task_queue: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = worker_settings.model_copy(update={"memory_api_url": url})
    down = f"MemoryApiDown: memory API unreachable at {url}/rag_query: ConnectError('All connection attempts failed')"
    async with product_worker(client, settings):
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.errors == []
    assert final.results.code_generation is not None and final.results.documentation is not None
    assert [w for w in final.warnings if w.startswith(UNAVAILABLE)] == [f"{UNAVAILABLE}: {down}"], final.warnings
    for provider in ("openai", "anthropic"):  # both agents were told, as their tool's result
        assert f"{UNAVAILABLE}: {down}" in tool_results(fake_llm, provider)


async def test_rag_answers_again_after_the_memory_api_is_killed_and_restarted_with_the_same_worker(
    client: Client,
    worker_settings: WorkerSettings,
    fake_llm: FakeLlmServer,
    task_queue: str,
    services: Services,
    tmp_path: Path,
) -> None:
    port, db = free_port(), tmp_path / "memory.db"
    memory = start_memory_api(services, db, port)
    settings = worker_settings.model_copy(update={"memory_api_url": f"http://127.0.0.1:{port}"})
    async with product_worker(client, settings):
        first = await (await start_task(client, task_queue, feedback_window_seconds=0)).result()
        assert not any(UNAVAILABLE in w for w in first.warnings)  # RAG answered: the pool is warm

        services.kill(memory)  # a crash of the memory API
        fake_llm.reset()
        fake_llm.hold_after = 3  # planner and both code turns are served; the doc agent's first turn waits
        handle = await start_task(client, task_queue, feedback_window_seconds=0)
        await wait_until(lambda: fake_llm.held >= 1, within=60)
        assert f"{UNAVAILABLE}: MemoryApiDown: memory API unreachable" in tool_results(fake_llm, "openai")

        start_memory_api(services, db, port)  # the same port, the same database
        fake_llm.hold_after = None
        fake_llm.release()  # the held call answers 503; its retry goes on, and the doc agent searches
        final = await handle.result()
    assert final.task_status == TaskStatus.COMPLETED and final.errors == []
    warned = [w for w in final.warnings if UNAVAILABLE in w]
    assert len(warned) == 1, final.warnings  # the code agent's search only
    doc_side = tool_results(fake_llm, "anthropic")
    assert UNAVAILABLE not in doc_side and "examples/arith.py" in doc_side  # the doc agent's search answered
