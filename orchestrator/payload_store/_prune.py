"""Retention: deleting the values of tasks whose histories Temporal no longer has, and the `prune` command's
arguments."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.payload_store._driver import STORE_ENV, ChunkStorageDriver

logger = logging.getLogger(__name__)

PRUNE_MIN_AGE_SECONDS = 3600.0


async def prune(
    driver: ChunkStorageDriver,
    exists: Callable[[str], Awaitable[bool]],
    dry_run: bool = False,
    min_age_seconds: float = PRUNE_MIN_AGE_SECONDS,
) -> tuple[list[str], int]:
    """Delete the values of every task for which `await exists(task_id)` is False; (deleted tasks, bytes freed).

    A task that wrote a value in the last `min_age_seconds` is kept whatever Temporal says: a client stores a
    task's input just before it starts the workflow, so a young task may not have started yet.
    """
    deleted: list[str] = []
    freed = 0
    now = time.time()
    for task, newest in sorted((await driver.tasks()).items()):
        if now - newest < min_age_seconds or await exists(task):
            continue
        deleted.append(task)
        freed += await (driver.task_bytes(task) if dry_run else driver.delete_task(task))
    return deleted, freed


async def workflow_exists(client: Client, task: str) -> bool:
    """Whether Temporal still has a history for workflow id `task` (running, or closed within retention)."""
    try:
        await client.get_workflow_handle(task).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def prune_round(driver: ChunkStorageDriver, client: Client, dry_run: bool, min_age_seconds: float) -> None:
    deleted, freed = await prune(
        driver, lambda task: workflow_exists(client, task), dry_run=dry_run, min_age_seconds=min_age_seconds
    )
    verb = "would delete" if dry_run else "deleted"
    logger.info(
        "%s the values of %d task(s) past retention (%d bytes) in %s", verb, len(deleted), freed, driver.backend.where
    )
    for task in deleted:
        logger.info("  %s", task)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=f"Housekeeping of the payload store ({STORE_ENV}).")
    sub = parser.add_subparsers(dest="command", required=True)
    prune_cmd = sub.add_parser("prune", help="delete the values of tasks whose history Temporal no longer has")
    prune_cmd.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    prune_cmd.add_argument(
        "--min-age", type=float, default=PRUNE_MIN_AGE_SECONDS, help="keep tasks that wrote a value this recently (s)"
    )
    prune_cmd.add_argument(
        "--every", type=float, default=None, metavar="SECONDS", help="keep running: one round every SECONDS"
    )
    prune_cmd.add_argument(
        "--health-file", default=None, metavar="PATH", help="write the time to PATH after each round that succeeded"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    cli = parser()
    args = cli.parse_args(argv)
    if args.every is not None and args.every <= 0:
        cli.error("--every must be > 0")
    return args
