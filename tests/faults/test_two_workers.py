"""Two workers on one task queue, the one running a model call killed mid-task: the other finishes the task, and
no finished model call is paid twice (counted at the fake provider)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client

from testbed.llm_server import FakeLlmServer
from tests.support import start_task, wait_until
from workflows.models import LLM_ACTIVITY, TaskStatus

POLLING = "worker polling task queue"


async def test_the_surviving_worker_finishes_the_task_without_repaying_a_model_call(
    client: Client,
    fake_llm: FakeLlmServer,
    task_queue: str,
    spawn_worker: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    workers = {proc.pid: proc for proc in (spawn_worker(), spawn_worker())}
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    await wait_until(lambda: all(POLLING in log.read_text(errors="replace") for log in logs), within=60)

    fake_llm.hold_after = 2  # planner and the first code turn are served; the second code turn hangs
    handle = await start_task(client, task_queue, feedback_window_seconds=0)
    await wait_until(lambda: fake_llm.held >= 1, within=60)
    pending = (await handle.describe()).raw_description.pending_activities
    (call,) = [a for a in pending if a.activity_type.name == LLM_ACTIVITY]
    running = int(call.last_worker_identity.split("@")[0])  # the SDK's identity: <pid>@<host>
    assert running in workers, (call.last_worker_identity, list(workers))
    survivor = next(pid for pid in workers if pid != running)

    workers[running].send_signal(signal.SIGKILL)  # a crash: the in-flight call is lost with it
    workers[running].wait(timeout=10)
    fake_llm.hold_after = None
    fake_llm.release()

    final = await handle.result()  # the other worker, after the lost call's heartbeat timeout
    assert final.task_status == TaskStatus.COMPLETED and final.errors == []
    assert final.results.code_generation is not None and final.results.documentation is not None
    assert fake_llm.total_served == 5  # planner + 2 code turns + 2 doc turns
    assert all(count == 1 for count in fake_llm.served.values()), fake_llm.served

    history = (await handle.fetch_history()).to_json_dict()["events"]
    kill_point = next(
        i
        for i, e in enumerate(history)
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"
        and e["activityTaskStartedEventAttributes"]["attempt"] > 1
    )
    after = [
        e["activityTaskStartedEventAttributes"]["identity"]
        for e in history[kill_point:]
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"
    ]
    assert after and all(identity.startswith(f"{survivor}@") for identity in after), after
    assert workers[survivor].poll() is None
