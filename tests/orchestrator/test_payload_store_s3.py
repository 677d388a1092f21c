"""The payload store over S3: the same chunks, sealing and checks, in a bucket of a real S3-compatible HTTP server
(moto's server, reached over HTTP by boto3 exactly as MinIO or AWS would be)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from temporalio.client import Client
from temporalio.converter import StorageDriverClaim, StorageDriverRetrieveContext

from orchestrator import payload_store
from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store import (
    ChunkSealer,
    PayloadStoreError,
    chunks,
    external_storage,
    prune,
    store_driver,
    workflow_exists,
)
from orchestrator.payload_store.s3 import CONCURRENCY, S3_DRIVER_NAME, BotoS3Client, S3ChunkStorageDriver, parse_url
from orchestrator.temporal import data_converter
from tests.orchestrator.test_payload_store import CONTEXT, payload_of, target
from tests.support import ROOT, start_task, wait_until
from workflows.models import ChatMessage, LlmRequest


def bucket_of(env: dict[str, str]) -> tuple[Any, str, str]:
    """A plain boto3 client on the test server, the bucket and the prefix PAYLOAD_STORE names."""
    raw = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    bucket, prefix = parse_url(env["PAYLOAD_STORE"])
    return raw, bucket, prefix


def object_names(env: dict[str, str]) -> list[str]:
    raw, bucket, prefix = bucket_of(env)
    return [o["Key"] for o in raw.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def objects(env: dict[str, str]) -> dict[str, bytes]:
    raw, bucket, prefix = bucket_of(env)
    listed = raw.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: raw.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def driver_for(env: dict[str, str], codec: EncryptionCodec | None = None) -> S3ChunkStorageDriver:
    return S3ChunkStorageDriver.from_url(env["PAYLOAD_STORE"], env, codec)


def test_an_s3_url_configures_the_s3_driver_and_a_path_still_the_local_one(s3_store_env: dict[str, str]) -> None:
    storage = external_storage(None, s3_store_env)
    assert storage is not None and [d.name() for d in storage.drivers] == [S3_DRIVER_NAME]
    assert store_driver(None, s3_store_env) is storage.drivers[0]  # one per process and configuration
    assert store_driver(None, {"PAYLOAD_STORE": "data/p.sqlite"}).name() == "local"  # type: ignore[union-attr]
    assert parse_url("s3://bucket") == ("bucket", "") and parse_url("s3://b/a/b/") == ("b", "a/b")
    with pytest.raises(ValueError, match="s3://bucket"):
        parse_url("s3:///prefix")


async def test_a_task_id_too_long_for_an_object_name_is_refused_clearly(s3_store_env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exceed S3's 1024 bytes"):
        await driver_for(s3_store_env).store(target("é" * 300), [payload_of(["hello"])])


async def test_round_trip_and_a_re_sent_conversation_writes_only_its_new_chunks(s3_store_env: dict[str, str]) -> None:
    driver = driver_for(s3_store_env)
    first = payload_of([CONTEXT])
    [claim] = await driver.store(target("task/a b"), [first])  # any workflow id: one path segment
    stored_first = objects(s3_store_env)
    _, _, prefix = bucket_of(s3_store_env)
    assert stored_first and all(key.startswith(f"{prefix}/task%2Fa%20b/") for key in stored_first)
    assert driver.counters.chunks_written == len(stored_first) > 3

    second = payload_of([CONTEXT, "the draft\n" * 20, "lint: 10/10"])
    [claim2] = await driver.store(target("task/a b"), [second])
    stored_second = objects(s3_store_env)
    new = set(stored_second) - set(stored_first)
    assert all(stored_second[key] == value for key, value in stored_first.items())  # nothing rewritten
    assert len(new) == driver.counters.chunks_written - len(stored_first) >= 2  # new chunks and a manifest
    assert sum(len(stored_second[key]) for key in new) < 0.2 * len(first.data)  # not the context again

    [again] = await driver.store(target("task/a b"), [second])  # a retry: nothing new
    assert again == claim2 and objects(s3_store_env) == stored_second
    reader = driver_for(s3_store_env)  # another process
    [back, back2] = await reader.retrieve(StorageDriverRetrieveContext(), [claim, claim2])
    assert back == first and back2 == second
    assert set(await reader.tasks()) == {"task/a b"}

    small = payload_of(["a short message"])  # a chunk and a manifest: asked by HEAD, not by a listing
    written = driver.counters.chunks_written
    [claim3] = await driver.store(target("task/a b"), [small])
    [claim4] = await driver.store(target("task/a b"), [small])
    assert claim3 == claim4 and driver.counters.chunks_written == written + 2
    assert await reader.retrieve(StorageDriverRetrieveContext(), [claim3]) == [small]


async def test_an_existing_object_is_never_overwritten(s3_store_env: dict[str, str]) -> None:
    raw, bucket, _ = bucket_of(s3_store_env)
    client = BotoS3Client.from_env(s3_store_env)
    await client.put_object(bucket=bucket, key="k", data=b"first")
    await client.put_object(bucket=bucket, key="k", data=b"second")  # If-None-Match: refused, not an error
    assert raw.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    assert await client.object_exists(bucket=bucket, key="k") and not await client.object_exists(bucket=bucket, key="x")


class DropsOnePut(BotoS3Client):
    """The real client, except that the PUT of one object fails as a lost connection would (the network's fault,
    injected at the one place a test can choose which request it hits)."""

    def __init__(self, real: BotoS3Client, fails: str) -> None:
        super().__init__(real._client)
        self.fails = fails

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        if key.endswith(self.fails):
            await asyncio.sleep(0.5)  # a slow failure: every other PUT in flight has finished by then
            raise EndpointConnectionError(endpoint_url="http://lost")
        await super().put_object(bucket=bucket, key=key, data=data)


async def test_a_failed_chunk_write_leaves_no_manifest_and_a_retry_completes_it(s3_store_env: dict[str, str]) -> None:
    payload = payload_of([CONTEXT[:30_000]])  # fewer chunks than the PUTs in flight at once
    keys = [ChunkSealer(None).key(piece) for piece in chunks(payload.SerializeToString(deterministic=True))]
    bucket, prefix = parse_url(s3_store_env["PAYLOAD_STORE"])
    assert 2 < len(keys) < CONCURRENCY
    flaky = DropsOnePut(BotoS3Client.from_env(s3_store_env), fails=keys[0])
    with pytest.raises(
        RuntimeError, match=rf"S3 PUT failed \[task='task-f', object=s3://{bucket}/{prefix}/.*{keys[0]}"
    ):
        await S3ChunkStorageDriver(flaky, bucket, prefix).store(target("task-f"), [payload])
    written = {key.rsplit("/", 1)[1] for key in objects(s3_store_env)}
    assert written and written <= set(keys) - {keys[0]}  # some chunks, and no manifest naming the lost one
    [claim] = await driver_for(s3_store_env).store(target("task-f"), [payload])  # the activity's retry
    assert claim.claim_data["manifest"] in {key.rsplit("/", 1)[1] for key in objects(s3_store_env)}
    [back] = await driver_for(s3_store_env).retrieve(StorageDriverRetrieveContext(), [claim])
    assert back == payload


async def test_with_encryption_nothing_plain_is_in_the_bucket_and_the_values_read_back(
    s3_store_env: dict[str, str],
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {**s3_store_env, "PAYLOAD_ENCRYPTION_KEYS": f"k1={key}"}
    converter = data_converter(env)
    value = LlmRequest(role="planner", system="s", messages=[ChatMessage(role="user", content=CONTEXT)])
    [encoded] = await converter._with_store_context(target("task-e")).encode([value])
    reference = json.loads(encoded.data)
    assert encoded.ByteSize() < 1000 and reference["driverName"] == S3_DRIVER_NAME
    stored = objects(s3_store_env)
    assert stored and all(b"helper_1" not in v and b"return value" not in v for v in stored.values())
    [decoded] = await converter.decode([encoded], [LlmRequest])
    assert decoded == value
    wrong = driver_for(s3_store_env, EncryptionCodec({"k1": os.urandom(32)}))  # same id, another key
    with pytest.raises(PayloadStoreError, match="task 'task-e'"):
        await wrong.retrieve(StorageDriverRetrieveContext(), [StorageDriverClaim(claim_data=reference["claimData"])])


async def test_a_missing_or_corrupt_object_is_a_non_retryable_error_naming_the_task_and_key(
    s3_store_env: dict[str, str],
) -> None:
    driver = driver_for(s3_store_env)
    [claim] = await driver.store(target("task-c"), [payload_of([CONTEXT])])
    manifest = claim.claim_data["manifest"]
    raw, bucket, _ = bucket_of(s3_store_env)
    chunk_object = next(k for k in objects(s3_store_env) if not k.endswith(manifest))
    raw.put_object(Bucket=bucket, Key=chunk_object, Body=b"\0" * 100)  # tampered with behind the driver's back
    with pytest.raises(PayloadStoreError, match=r"task 'task-c': stored value [0-9a-f]{64} is corrupt") as corrupt:
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])
    assert corrupt.value.type == "PayloadStoreError"  # how it fails a task: tests/workflows/test_missing_values.py
    freed = await driver.delete_task("task-c")
    assert freed > len(CONTEXT) // 2 and objects(s3_store_env) == {}
    with pytest.raises(PayloadStoreError, match=f"task 'task-c': stored value {manifest} is missing from s3://"):
        await driver.retrieve(StorageDriverRetrieveContext(), [claim])


async def test_prune_deletes_the_objects_of_tasks_temporal_no_longer_has(
    client: Client, task_queue: str, s3_store_env: dict[str, str]
) -> None:
    """Against the real server and the real bucket: a running task is kept, an id Temporal never had is pruned;
    a task that wrote within min_age is kept (LastModified is its write time)."""
    handle = await start_task(client, task_queue)  # no worker: it stays running
    driver = driver_for(s3_store_env)
    for task in (handle.id, "task-never-started"):
        await driver.store(target(task), [payload_of([CONTEXT])])
    exists = lambda task: workflow_exists(client, task)  # noqa: E731
    assert await prune(driver, exists) == ([], 0)  # both just written
    listed, would_free = await prune(driver, exists, dry_run=True, min_age_seconds=0)
    assert listed == ["task-never-started"] and set(await driver.tasks()) == {handle.id, "task-never-started"}
    deleted, freed = await prune(driver, exists, min_age_seconds=0)
    assert deleted == ["task-never-started"] and freed == would_free > 0
    assert set(await driver.tasks()) == {handle.id}
    _, _, prefix = bucket_of(s3_store_env)
    assert all(key.startswith(f"{prefix}/{handle.id}/") for key in objects(s3_store_env))
    await handle.terminate("test done")


def test_the_prune_command_validates_every() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.payload_store", "prune", "--every", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, payload_store.STORE_ENV: ""},
    )
    assert done.returncode == 2 and "--every must be > 0" in done.stderr


async def test_the_prune_loop_deletes_each_round_and_writes_its_health_file(
    client: Client, s3_store_env: dict[str, str], tmp_path: Path
) -> None:
    """`prune --every` as compose runs it, as a real process against the real server and bucket: a value written
    after the loop started is gone within a round, and the health file says when the last good round ended."""
    health = tmp_path / "prune.ok"
    env = {
        **os.environ,
        **s3_store_env,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
    }
    log = tmp_path / "prune.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
            [sys.executable, "-m", "orchestrator.payload_store", "prune", "--every", "0.5", "--min-age", "0",
             "--health-file", str(health)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            await wait_until(health.exists, within=30)
            driver = driver_for(s3_store_env)
            await driver.store(target("task-gone"), [payload_of(["a value of a task Temporal never had"])])
            await wait_until(lambda: not object_names(s3_store_env), within=30)
            before = float(health.read_text())
            await wait_until(lambda: float(health.read_text()) > before, within=30)  # it keeps going
            assert proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "deleted the values of 1 task(s) past retention" in text and "  task-gone" in text, text
    assert f"in {s3_store_env['PAYLOAD_STORE']}" in text
