"""What each read the gateway makes of a task costs: server and worker CPU per call, on a running task (awaiting
feedback, in the worker's cache) and on a completed one (out of it).

    python -m bench.reads [--repeat 200]

The reads a watcher makes (api/gateway/streams.py, api/gateway/state.py): the owner check's describe, the stream's
poll query at catch-up, the `events` query a resuming client adds, and the task's final state, by the `status`
query or, for a completed task, its result. The dev server and an offline worker run in this process's tree (the
worker in this process, so "worker" below is this process: the worker and the client making the reads). Timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from activities.config import WorkerSettings
from api.gateway.state import TaskHandle, read_state, task_handle
from api.gateway.streams import NO_EVENTS, read_stream
from launcher.processes import all_processes, cpu_seconds
from testbed.product import dev_server, product_worker, start_task
from workflows.coding_task import CodingTask
from workflows.models import EventsQueryInput, TaskStatus

RPC = timedelta(seconds=10)
QUEUE = "bench-reads"


async def _per_call(server_pid: int, read: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    """Server and this process's CPU per call, in ms."""
    server, here = cpu_seconds(server_pid), time.process_time()
    for _ in range(repeat):
        await read()
    return (cpu_seconds(server_pid) - server) / repeat * 1000, (time.process_time() - here) / repeat * 1000


def reads_of(client: Client, session_id: str, completed: bool) -> dict[str, Callable[[], Awaitable[Any]]]:
    handle = task_handle(client, session_id)
    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "describe": handle.describe,
        "poll query": lambda: read_stream(client, session_id, 0, RPC),
        "events query": lambda: handle.query(CodingTask.events, EventsQueryInput(after=NO_EVENTS)),
        "status query": lambda: handle.query(CodingTask.status),
    }
    if completed:
        reads["result"] = lambda: read_state(handle, True, RPC)
    return reads


async def awaiting_feedback(handle: TaskHandle) -> None:
    for _ in range(600):
        if (await handle.query(CodingTask.status)).task_status == TaskStatus.AWAITING_FEEDBACK:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{handle.id} never reached awaiting_feedback")


async def main(repeat: int) -> None:
    logging.basicConfig(level=logging.ERROR)  # the offline tasks' knowledge searches fail: no memory API here
    env = await dev_server()
    server_pid = next(p.pid for p in all_processes() if p.ppid == os.getpid())
    client = env.client
    settings = WorkerSettings(_env_file=None, llm_mode="offline", temporal_task_queue=QUEUE)
    try:
        async with product_worker(client, settings):
            waiting = await start_task(client, QUEUE, feedback_window_seconds=600)
            done = await start_task(client, QUEUE, feedback_window_seconds=0)
            await done.result()
            await awaiting_feedback(waiting)
            print(f"{'task':10} {'read':14} {'server ms':>10} {'worker ms':>10}   ({repeat} calls each)")
            for label, handle in (("running", waiting), ("completed", done)):
                for name, read in reads_of(client, handle.id, handle is done).items():
                    server, worker = await _per_call(server_pid, read, repeat)
                    print(f"{label:10} {name:14} {server:10.2f} {worker:10.2f}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    asyncio.run(main(parser.parse_args().repeat))
