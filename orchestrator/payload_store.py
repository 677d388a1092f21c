"""Large payloads live outside history: a content-addressed folder behind the SDK's `ExternalStorage`.

With PAYLOAD_STORE_DIR set, every payload of at least PAYLOAD_STORE_THRESHOLD bytes (default 16 KiB) that a
client or worker sends to Temporal is written to the folder, and history holds a small reference to it
(`{"driver_name": "local", "claim_data": {"task": ..., "key": ...}}`) instead of the bytes::

    PAYLOAD_STORE_DIR/<task id>/<sha256 of the stored bytes>

- **Content-addressed and immutable**: the file name is the SHA-256 of its bytes; a second write of the same
  bytes is a no-op, and a file is never rewritten. A value is written (to a temporary name, fsynced, renamed)
  before the SDK puts its reference in a command, so a crash in between leaves only an unreferenced file.
- **Encrypted at rest**: the SDK runs the payload codec first, so with PAYLOAD_ENCRYPTION_KEYS set the stored
  bytes are the AES-GCM ciphertext (`orchestrator.codec`); no plaintext reaches the folder.
- **Checked on read**: a missing file or one whose bytes no longer hash to its name raises `PayloadStoreError`
  (non-retryable, naming the task and the key) — a retry would read the same bytes.
- **One folder per task**, so `python -m orchestrator.payload_store prune` deletes the values of tasks whose
  histories Temporal no longer has (past the namespace's retention).

Every process that reads or writes these histories (worker, gateway, scripts, replayer) needs the same folder:
one machine (`make run`) or a shared volume.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

logger = logging.getLogger(__name__)

DIR_ENV = "PAYLOAD_STORE_DIR"
THRESHOLD_ENV = "PAYLOAD_STORE_THRESHOLD"
DEFAULT_THRESHOLD = 16 * 1024
DRIVER_NAME = "local"
NO_TASK = "_no-task"  # a payload stored outside any workflow (should not happen: clients target a workflow)
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_TASK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # the session id pattern (workflows.models)


class PayloadStoreError(ApplicationError):
    """A stored value is missing or corrupt: the task cannot go on with it, and a retry would not help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="PayloadStoreError", non_retryable=True)


def _task_dir_name(task: str | None) -> str:
    if not task:
        return NO_TASK
    if not _TASK_RE.match(task):  # never a path outside the root
        return "_h-" + hashlib.sha256(task.encode()).hexdigest()[:32]
    return task


@dataclass
class StoreCounters:
    """What this process wrote: values, bytes of new files, and writes that found the value already there."""

    written: int = 0
    written_bytes: int = 0
    deduplicated: int = 0


class LocalStorageDriver(StorageDriver):
    """The folder driver: `<root>/<task id>/<sha256>`, written atomically, verified on read."""

    def __init__(self, root: str | Path, name: str = DRIVER_NAME) -> None:
        self.root = Path(root)
        self._name = name
        self.counters = StoreCounters()

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return "coding-orchestrator.local-folder"

    def path(self, task: str, key: str) -> Path:
        return self.root / _task_dir_name(task) / key

    def put(self, task: str | None, data: bytes) -> str:
        """Write `data` once under its SHA-256 (the key returned); the same bytes again are not rewritten."""
        key = hashlib.sha256(data).hexdigest()
        path = self.root / _task_dir_name(task) / key
        if path.exists():
            self.counters.deduplicated += 1
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)  # atomic: a reader sees the whole value or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.counters.written += 1
        self.counters.written_bytes += len(data)
        return key

    def get(self, task: str, key: str) -> bytes:
        """The bytes stored under `key` for `task`; PayloadStoreError when missing or not matching the key."""
        if not _KEY_RE.match(key):
            raise PayloadStoreError(f"task {task!r}: stored value key {key!r} is not a SHA-256 hex digest")
        path = self.path(task, key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PayloadStoreError(
                f"task {task!r}: stored value {key} is missing from {self.root} (deleted past retention, or this "
                f"process does not share the workers' {DIR_ENV})"
            ) from None
        if hashlib.sha256(data).hexdigest() != key:
            raise PayloadStoreError(f"task {task!r}: stored value {key} is corrupt (its bytes do not match its key)")
        return data

    async def store(self, context: StorageDriverStoreContext, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        task = context.target.id if context.target is not None else None
        claims = []
        for payload in payloads:
            data = payload.SerializeToString(deterministic=True)
            key = await asyncio.to_thread(self.put, task, data)
            claims.append(StorageDriverClaim(claim_data={"task": _task_dir_name(task), "key": key}))
        return claims

    async def retrieve(self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]) -> list[Payload]:
        payloads = []
        for claim in claims:
            task, key = claim.claim_data.get("task", NO_TASK), claim.claim_data.get("key", "")
            data = await asyncio.to_thread(self.get, task, key)
            try:
                payloads.append(Payload.FromString(data))
            except Exception as exc:
                raise PayloadStoreError(f"task {task!r}: stored value {key} is not a payload: {exc}") from exc
        return payloads

    def task_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def delete_task(self, task: str) -> int:
        """Delete every value of `task`; the bytes freed."""
        folder = self.root / _task_dir_name(task)
        freed = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return freed


def threshold(environ: Mapping[str, str]) -> int:
    text = environ.get(THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{THRESHOLD_ENV} must be a number of bytes, not {text!r}") from None
    if value < 0:
        raise ValueError(f"{THRESHOLD_ENV} must be >= 0")
    return value


def external_storage(environ: Mapping[str, str] | None = None) -> ExternalStorage | None:
    """The `ExternalStorage` PAYLOAD_STORE_DIR describes, or None when it is unset (payloads stay inline)."""
    env = os.environ if environ is None else environ
    root = env.get(DIR_ENV, "").strip()
    if not root:
        return None
    return ExternalStorage(drivers=[LocalStorageDriver(root)], payload_size_threshold=threshold(env))


# --------------------------------------------------------------------------- housekeeping


PRUNE_MIN_AGE_SECONDS = 3600.0


async def prune(
    driver: LocalStorageDriver,
    exists: Callable[[str], Awaitable[bool]],
    dry_run: bool = False,
    min_age_seconds: float = PRUNE_MIN_AGE_SECONDS,
) -> tuple[list[str], int]:
    """Delete the values of every task for which `await exists(task_id)` is False; (deleted tasks, bytes freed).

    A folder changed in the last `min_age_seconds` is kept whatever Temporal says: a client writes a task's input
    value just before it starts the workflow, so a young folder may belong to a task not started yet.
    """
    deleted: list[str] = []
    freed = 0
    now = time.time()
    for task in driver.task_ids():
        if task.startswith("_") or now - (driver.root / task).stat().st_mtime < min_age_seconds:
            continue
        if await exists(task):
            continue
        deleted.append(task)
        if not dry_run:
            freed += driver.delete_task(task)
    return deleted, freed


async def _workflow_exists(client: Client, task: str) -> bool:
    try:
        await client.get_workflow_handle(task).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _prune_main(args: argparse.Namespace) -> None:
    from orchestrator.temporal import connect_client

    root = os.environ.get(DIR_ENV, "").strip()
    if not root:
        raise SystemExit(f"{DIR_ENV} is not set: there is no payload store to prune")
    client = await connect_client()
    driver = LocalStorageDriver(root)
    deleted, freed = await prune(
        driver, lambda task: _workflow_exists(client, task), dry_run=args.dry_run, min_age_seconds=args.min_age
    )
    verb = "would delete" if args.dry_run else "deleted"
    logger.info("%s the values of %d task(s) past retention (%d bytes)", verb, len(deleted), freed)
    for task in deleted:
        logger.info("  %s", task)


def main() -> None:
    parser = argparse.ArgumentParser(description="Housekeeping of the payload store (PAYLOAD_STORE_DIR).")
    sub = parser.add_subparsers(dest="command", required=True)
    prune_cmd = sub.add_parser("prune", help="delete the values of tasks whose history Temporal no longer has")
    prune_cmd.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    prune_cmd.add_argument(
        "--min-age", type=float, default=PRUNE_MIN_AGE_SECONDS, help="keep folders changed this many seconds ago"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_prune_main(args))


if __name__ == "__main__":
    main()
