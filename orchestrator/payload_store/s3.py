"""The payload store's chunks in an S3 bucket, so every machine of a cluster shares them.

`PAYLOAD_STORE=s3://bucket/prefix` puts each chunk of `orchestrator.payload_store` at `<prefix>/<task>/<key>`
(the task id percent-encoded, so it is one path segment); chunking, sealing, manifests and verification are the
same driver's as for the SQLite file, only the backend differs. The driver's name in history is `s3-chunks`.

The S3 calls go through the SDK's client abstraction (`temporalio.contrib.aws.s3driver.S3StorageDriverClient`:
`put_object`, `object_exists`, `get_object`), extended by S3ChunkClient with what pruning needs (list, delete).
The implementation is boto3's client (thread-safe and bound to no event loop, so one per process serves the
gateway, the worker, the codec server and the CLI), called in threads; the SDK's aioboto3 adapter is not used: its
upload can overwrite, it has no listing or deleting, and its client must be entered in one event loop.

Configuration is the standard AWS environment: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3; for MinIO, e.g.
`http://minio:9000`, addressed path-style), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
AWS_REGION (or AWS_DEFAULT_REGION); whatever is not set there comes from boto3's own chain (profile, instance
role). A chunk is written with `If-None-Match: *` after a HEAD (or, for a payload of many chunks, one listing of
the task's prefix) found it missing, so an existing object is never overwritten (a 412 means another process
stored the same chunk first).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.contrib.aws.s3driver import S3StorageDriverClient

from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store._driver import ChunkBackend, ChunkStorageDriver

S3_DRIVER_NAME = "s3-chunks"
S3_SCHEME = "s3://"
# read here (and by boto3) when PAYLOAD_STORE is an s3:// URL
AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
CONCURRENCY = 16  # S3 requests in flight per payload
MAX_KEY_BYTES = 1024  # S3's limit on an object's name
HEAD_AT_MOST = 4  # a payload of more chunks asks which exist with a listing of its task
_MISSING = {"404", "NoSuchKey", "NotFound"}

T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: float  # Unix time


class ObjectMissing(LookupError):
    """No object at that key."""


class S3ChunkClient(S3StorageDriverClient):
    """The SDK's S3 client abstraction, and what pruning needs besides. `put_object` never overwrites an object
    that exists; `get_object` raises ObjectMissing when there is none."""

    @abstractmethod
    async def list_objects(self, *, bucket: str, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix`."""

    @abstractmethod
    async def delete_objects(self, *, bucket: str, keys: Sequence[str]) -> None:
        """Delete these objects (a missing one is no error)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class BotoS3Client(S3ChunkClient):
    """S3ChunkClient over a boto3 S3 client, each call in a thread of its own pool (CONCURRENCY threads: the
    default executor has only cores + 4)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._threads = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="payload-store-s3")

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(call, *args))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BotoS3Client:
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
        config = Config(
            # MinIO and most S3-compatible servers on one host name: the bucket in the path, not in the host
            s3={"addressing_style": "path" if endpoint else "auto"},
            # checksums only where S3 requires them (older S3-compatible servers reject the new default trailers);
            # every chunk is verified against its key on read anyway
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # a failed store fails the activity attempt that produced the value (a model call paid again), so
            # transient errors are retried here, briefly
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=CONCURRENCY,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
            region_name=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            config=config,
        )
        return cls(client)

    def describe(self) -> Mapping[str, str]:
        return {"endpoint": str(self._client.meta.endpoint_url), "region": str(self._client.meta.region_name)}

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        def put() -> None:
            try:
                self._client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            except ClientError as exc:
                code = _code(exc)
                if code in ("PreconditionFailed", "412"):  # it exists: left as it is
                    return
                if code == "ConditionalRequestConflict" and self._exists(bucket, key):  # a concurrent writer won
                    return
                raise

        await self._run(put)

    def _exists(self, bucket: str, key: str) -> bool:
        try:
            self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        return await self._run(self._exists, bucket, key)

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        def get() -> bytes:
            try:
                response = self._client.get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    raise ObjectMissing(key) from exc
                raise
            return bytes(response["Body"].read())

        return await self._run(get)

    async def list_objects(self, *, bucket: str, prefix: str) -> list[StoredObject]:
        def listing() -> list[StoredObject]:
            out = []
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    modified: datetime.datetime = item["LastModified"]
                    out.append(StoredObject(item["Key"], int(item["Size"]), modified.timestamp()))
            return out

        return await self._run(listing)

    async def delete_objects(self, *, bucket: str, keys: Sequence[str]) -> None:
        def delete() -> None:
            for start in range(0, len(keys), 1000):  # S3's limit per request
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                response = self._client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                if response.get("Errors"):
                    raise RuntimeError(
                        f"S3 refused to delete {len(response['Errors'])} object(s): {response['Errors'][:3]}"
                    )

        await self._run(delete)


async def _bounded(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls with at most CONCURRENCY in flight, results in order; the first failure cancels the rest."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    tasks = [asyncio.ensure_future(one(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (bucket, `some/prefix`)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"an S3 payload store is s3://bucket[/prefix], not {url!r}")
    return parsed.netloc, parsed.path.strip("/")


class S3ChunkBackend(ChunkBackend):
    """Chunks as objects `<prefix>/<task>/<key>` in one bucket; a task's newest write time is its newest object's
    LastModified."""

    def __init__(self, client: S3ChunkClient, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.where = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _task_prefix(self, task: str) -> str:
        return f"{self._root()}{quote(task, safe='')}/"

    def _key(self, task: str, key: str) -> str:
        name = self._task_prefix(task) + key
        if len(name.encode()) > MAX_KEY_BYTES:
            raise ValueError(f"task {task!r}: its object names would exceed S3's {MAX_KEY_BYTES} bytes (a shorter id)")
        return name

    def _fail(self, what: str, task: str, key: str, exc: Exception) -> RuntimeError:
        details = "".join(f", {k}={v}" for k, v in self.client.describe().items())
        return RuntimeError(f"S3 {what} failed [task={task!r}, object={self.where}/.../{key}{details}]: {exc}")

    async def existing(self, task: str, keys: Sequence[str]) -> set[str]:
        if len(keys) > HEAD_AT_MOST:  # one listing of the task (1,000 keys a page) instead of a HEAD per chunk
            try:
                listed = await self.client.list_objects(bucket=self.bucket, prefix=self._task_prefix(task))
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("LIST", task, "", exc) from exc
            return {item.key.rsplit("/", 1)[1] for item in listed} & set(keys)

        async def probe(key: str) -> bool:
            try:
                return await self.client.object_exists(bucket=self.bucket, key=self._key(task, key))
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("HEAD", task, key, exc) from exc

        found = await _bounded([functools.partial(probe, key) for key in keys])
        return {key for key, there in zip(keys, found, strict=True) if there}

    async def write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        async def put(key: str, value: bytes) -> None:
            try:
                await self.client.put_object(bucket=self.bucket, key=self._key(task, key), data=value)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("PUT", task, key, exc) from exc

        *chunk_values, last = values
        await _bounded([functools.partial(put, key, value) for key, value in chunk_values])
        await put(*last)  # the manifest, once every chunk it names is stored

    async def read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        async def get(key: str) -> bytes | None:
            try:
                return await self.client.get_object(bucket=self.bucket, key=self._key(task, key))
            except ObjectMissing:
                return None
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("GET", task, key, exc) from exc

        return await _bounded([functools.partial(get, key) for key in keys])

    async def _objects_by_task(self) -> dict[str, list[StoredObject]]:
        root = self._root()
        by_task: dict[str, list[StoredObject]] = {}
        for item in await self.client.list_objects(bucket=self.bucket, prefix=root):
            segment, slash, _ = item.key[len(root) :].partition("/")
            if slash:
                by_task.setdefault(unquote(segment), []).append(item)
        return by_task

    async def tasks(self) -> dict[str, float]:
        return {task: max(i.last_modified for i in items) for task, items in (await self._objects_by_task()).items()}

    async def task_bytes(self, task: str) -> int:
        return sum(i.size for i in await self.client.list_objects(bucket=self.bucket, prefix=self._task_prefix(task)))

    async def delete_task(self, task: str) -> int:
        items = await self.client.list_objects(bucket=self.bucket, prefix=self._task_prefix(task))
        await self.client.delete_objects(bucket=self.bucket, keys=[i.key for i in items])
        return sum(i.size for i in items)


class S3ChunkStorageDriver(ChunkStorageDriver):
    """The payload store's driver over a bucket (name `s3-chunks`)."""

    def __init__(
        self,
        client: S3ChunkClient,
        bucket: str,
        prefix: str = "",
        codec: EncryptionCodec | None = None,
        name: str = S3_DRIVER_NAME,
    ) -> None:
        super().__init__(S3ChunkBackend(client, bucket, prefix), codec, name, "coding-orchestrator.s3-chunks")

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str], codec: EncryptionCodec | None) -> S3ChunkStorageDriver:
        bucket, prefix = parse_url(url)
        return cls(BotoS3Client.from_env(environ), bucket, prefix, codec)
