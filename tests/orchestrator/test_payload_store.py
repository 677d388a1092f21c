"""The payload store: content-addressed chunks, each once per task, sealed at rest, verified on read, pruned."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from orchestrator import payload_store
from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store import (
    CHUNK_MAX,
    PayloadStoreError,
    SqliteStorageDriver,
    chunks,
    external_storage,
    prune,
    workflow_exists,
)
from orchestrator.temporal import data_converter
from tests.support import start_task
from workflows.models import ChatMessage, LlmRequest

CONTEXT = "".join(f"def helper_{i}(value: int) -> int:\n    return value * {i} + {i % 7}\n\n" for i in range(2000))


def target(task: str) -> StorageDriverStoreContext:
    return StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace="default", id=task))


def payload_of(messages: list[str]) -> Payload:
    request = LlmRequest(
        role="code_generation",
        system="you write code",
        messages=[ChatMessage(role="user", content=m) for m in messages],
    )
    return Payload(metadata={"encoding": b"json/plain"}, data=request.model_dump_json().encode())


def rows(path: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT task, key, value FROM chunks").fetchall()


def test_chunks_put_back_together_are_the_bytes_and_a_shared_run_of_lines_gives_the_same_chunks() -> None:
    data = payload_of([CONTEXT]).SerializeToString()
    pieces = chunks(data)
    assert b"".join(pieces) == data and len(pieces) > 3 and max(map(len, pieces)) <= CHUNK_MAX
    shifted = chunks(payload_of(["a preamble of another length\n" * 3 + CONTEXT]).SerializeToString())
    shared = set(pieces) & set(shifted)
    assert sum(map(len, shared)) > 0.8 * len(data)
    assert b"".join(chunks(os.urandom(3 * CHUNK_MAX + 5))) and all(len(p) <= CHUNK_MAX for p in chunks(b"x" * 300_000))


async def test_a_conversation_re_sent_with_one_more_message_stores_little_more(tmp_path: Path) -> None:
    driver = SqliteStorageDriver(tmp_path / "store.sqlite")
    first = payload_of([CONTEXT])
    [claim] = await driver.store(target("task-a"), [first])
    after_first = driver.counters.bytes_written
    second = payload_of([CONTEXT, "the draft\n" * 20, "lint: 10/10"])
    [claim2] = await driver.store(target("task-a"), [second])
    assert driver.counters.bytes_written - after_first < 0.2 * len(first.data)  # not the context again
    assert claim.claim_data["task"] == "task-a" and claim.claim_data["bytes"] == str(first.ByteSize())
    [back, back2] = await driver.retrieve(StorageDriverRetrieveContext(), [claim, claim2])
    assert back == first and back2 == second


async def test_the_same_bytes_are_the_same_key_and_never_rewritten(tmp_path: Path) -> None:
    driver = SqliteStorageDriver(tmp_path / "store.sqlite")
    payload = payload_of([CONTEXT])
    [a] = await driver.store(target("task-a"), [payload])
    before = rows(tmp_path / "store.sqlite")
    [b] = await driver.store(target("task-a"), [payload])
    assert a == b and rows(tmp_path / "store.sqlite") == before  # a retry writes nothing new
    assert driver.counters.payloads_known == 1  # found by its key: no chunking (a replay re-sends every input)


async def test_a_manifest_that_names_other_chunks_is_corrupt(tmp_path: Path) -> None:
    """A manifest is stored under its payload's key, so the payload is checked against it, not the manifest."""
    path = tmp_path / "store.sqlite"
    driver = SqliteStorageDriver(path)
    [claim, other] = await driver.store(target("task-m"), [payload_of([CONTEXT]), payload_of(["another"])])
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE chunks SET value = (SELECT value FROM chunks WHERE key = ?) WHERE key = ?",
            (other.claim_data["manifest"], claim.claim_data["manifest"]),
        )
    with pytest.raises(PayloadStoreError, match=f"stored value {claim.claim_data['manifest']} is corrupt"):
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])


async def test_with_encryption_keys_nothing_plain_is_at_rest_and_the_values_read_back(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"PAYLOAD_ENCRYPTION_KEYS": f"k1={key}", payload_store.STORE_ENV: str(tmp_path / "store.sqlite")}
    converter = data_converter(env)
    assert converter.external_storage is not None and converter.payload_codec is not None
    value = LlmRequest(role="planner", system="s", messages=[ChatMessage(role="user", content=CONTEXT)])
    bound = converter._with_store_context(target("task-e"))  # as the worker binds it
    [encoded] = await bound.encode([value])
    assert encoded.ByteSize() < 1000  # a reference
    stored = rows(tmp_path / "store.sqlite")
    assert stored and all(b"helper_1" not in v and b"return value" not in v for _, _, v in stored)
    [decoded] = await converter.decode([encoded], [LlmRequest])
    assert decoded == value
    other = EncryptionCodec({"k1": os.urandom(32)})  # same id, another key: the chunks do not open
    wrong = SqliteStorageDriver(tmp_path / "store.sqlite", other)
    reference = json.loads(encoded.data)
    claim = StorageDriverClaim(claim_data=reference["claimData"])
    with pytest.raises(PayloadStoreError, match="task 'task-e'"):
        await wrong.retrieve(StorageDriverRetrieveContext(), [claim])


async def test_a_missing_or_corrupt_value_is_a_non_retryable_error_naming_the_task_and_key(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    driver = SqliteStorageDriver(path)
    [claim] = await driver.store(target("task-c"), [payload_of([CONTEXT])])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE chunks SET value = zeroblob(LENGTH(value)) WHERE key != ?", (claim.claim_data["manifest"],))
    with pytest.raises(PayloadStoreError, match=r"task 'task-c': stored value [0-9a-f]{64} is corrupt") as corrupt:
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])
    assert corrupt.value.type == "PayloadStoreError"  # how it fails a task: tests/workflows/test_missing_values.py
    await driver.delete_task("task-c")
    with pytest.raises(
        PayloadStoreError, match=f"task 'task-c': stored value {claim.claim_data['manifest']} is missing"
    ):
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])


def test_the_store_is_off_unless_configured_and_the_threshold_is_checked(tmp_path: Path) -> None:
    assert external_storage(None, {}) is None and data_converter({}).external_storage is None
    storage = external_storage(
        None, {payload_store.STORE_ENV: str(tmp_path / "s.sqlite"), payload_store.THRESHOLD_ENV: "4096"}
    )
    assert storage is not None and storage.payload_size_threshold == 4096
    with pytest.raises(ValueError, match="PAYLOAD_STORE_THRESHOLD"):
        payload_store.threshold({payload_store.THRESHOLD_ENV: "many"})


async def test_prune_deletes_the_values_of_tasks_temporal_no_longer_has(tmp_path: Path) -> None:
    driver = SqliteStorageDriver(tmp_path / "store.sqlite")
    for task in ("kept", "gone", "young"):
        await driver.store(target(task), [payload_of([CONTEXT])])
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("UPDATE chunks SET created = ? WHERE task != 'young'", (time.time() - 7200,))

    async def exists(task: str) -> bool:
        return task == "kept"

    listed, _ = await prune(driver, exists, dry_run=True)
    assert listed == ["gone"] and set(await driver.tasks()) == {"kept", "gone", "young"}
    deleted, freed = await prune(driver, exists)
    assert deleted == ["gone"] and freed > len(CONTEXT) // 2
    assert set(await driver.tasks()) == {"kept", "young"}  # young: may be a task whose start is on its way


async def test_prune_asks_temporal_which_tasks_it_still_has(client: Client, task_queue: str, tmp_path: Path) -> None:
    """Against the real server: a running task is kept, an id Temporal never had is pruned."""
    handle = await start_task(client, task_queue)  # no worker: it stays running
    driver = SqliteStorageDriver(tmp_path / "store.sqlite")
    for task in (handle.id, "task-never-started"):
        await driver.store(target(task), [payload_of([CONTEXT])])
    deleted, _ = await prune(driver, lambda task: workflow_exists(client, task), min_age_seconds=0)
    assert deleted == ["task-never-started"] and set(await driver.tasks()) == {handle.id}
    await handle.terminate("test done")
