"""Store and read back one large conversation payload through the payload store's driver, over each backend.

    .venv/bin/python -m bench.payload_store_backends                 # 1.4 MB of code context
    .venv/bin/python -m bench.payload_store_backends --functions 2000  # about 140 KB

Three steps per backend, as an agent loop meets them: the first store (every chunk new), the same conversation
re-sent with two more messages (a few new chunks; which exist is asked once), and reading the second back. The
S3 backend runs against moto's S3 server in this process (a Python server on this machine: its per-request cost,
not a network's, dominates; MinIO or S3 differ), the SQLite one against a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
)

from orchestrator.payload_store import ChunkStorageDriver, SqliteStorageDriver
from orchestrator.payload_store.s3 import S3ChunkStorageDriver
from workflows.models import ChatMessage, LlmRequest


def conversation(context: str, *more: str) -> Payload:
    request = LlmRequest(
        role="code_generation",
        system="you write code",
        messages=[ChatMessage(role="user", content=m) for m in (context, *more)],
    )
    return Payload(metadata={"encoding": b"json/plain"}, data=request.model_dump_json().encode())


async def measure(driver: ChunkStorageDriver, label: str, context: str) -> None:
    where = StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace="default", id="bench-task"))
    first, second = conversation(context), conversation(context, "the draft\n" * 20, "lint: 10/10")
    started = time.perf_counter()
    await driver.store(where, [first])
    first_ms = (time.perf_counter() - started) * 1000
    chunks_first = driver.counters.chunks_written
    started = time.perf_counter()
    [claim] = await driver.store(where, [second])
    resend_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    [back] = await driver.retrieve(StorageDriverRetrieveContext(), [claim])
    read_ms = (time.perf_counter() - started) * 1000
    assert back == second
    print(
        f"{label:>18}: {first.ByteSize() / 1e6:.2f} MB payload, {chunks_first} objects; first store {first_ms:.0f} ms,"
        f" re-send {resend_ms:.0f} ms ({driver.counters.chunks_written - chunks_first} new), read back {read_ms:.0f} ms"
    )


async def main(functions: int) -> None:
    context = "".join(
        f"def helper_{i}(value: int) -> int:\n    return value * {i} + {i % 7}\n\n" for i in range(functions)
    )
    with tempfile.TemporaryDirectory() as tmp:
        await measure(SqliteStorageDriver(f"{tmp}/payloads.sqlite"), "sqlite file", context)

    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
        }
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        ).create_bucket(Bucket=bucket)
        await measure(S3ChunkStorageDriver.from_url(f"s3://{bucket}/bench", env, None), "s3 (moto server)", context)
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--functions", type=int, default=20_000, help="functions in the code context (70 B each)")
    asyncio.run(main(parser.parse_args().functions))
