"""Large payloads live outside history, each piece once: a content-addressed chunk store behind the SDK's
`ExternalStorage`, in a SQLite file or an S3 bucket.

With PAYLOAD_STORE set, every payload of at least PAYLOAD_STORE_THRESHOLD bytes (default 16 KiB) that a client or
worker sends to Temporal goes to the store, and history holds the SDK's small reference instead
(`{"driverName": "local", "claimData": {"task", "manifest", "bytes"}}`, about 200 bytes). PAYLOAD_STORE is
either a SQLite file (`make run`: `data/payloads.sqlite`; driver `local`) or `s3://bucket/prefix` (driver
`s3-chunks`, objects `<prefix>/<task>/<key>`, configured by the standard AWS_* variables: see
`orchestrator.payload_store_s3`). One driver, ChunkStorageDriver, does the chunking, sealing, manifests and
checks below over either ChunkBackend; a backend only keeps immutable bytes under (task, key).

**Each value once.** A payload is cut into content-defined chunks (boundaries after a JSON-escaped newline, chosen
by a hash of the lines around it; at most 128 KiB), and each chunk is stored under the hash of its bytes; the
payload's manifest (its chunk keys) is one more chunk, stored under the hash of the whole payload, so storing a
payload again (a replay re-sends every command's input) is one hash and one lookup. An `llm_chat` input re-sends
the whole conversation, but only its new messages make new chunks: the code context and every earlier message are
already stored and are only named again. So a task writes the context about once and each message about once,
however many agent steps re-send them (bench/history_size.py measures it). Chunks are per task (SQLite's key is
`(task, key)`, S3's objects sit under the task's prefix), so retention deletes a task's values together.

**Durable and exact.** A chunk is immutable (SQLite `INSERT OR IGNORE`, S3 `If-None-Match: *`: the same bytes,
the same key, never rewritten). The SDK stores a payload before it puts its reference in a command or a
completion; a payload's manifest is written only once its chunks are (SQLite: one transaction with
`synchronous=FULL`; S3: the manifest's PUT after the chunks'), so a crash in between leaves only unreferenced
chunks. Every chunk read is verified against its key; a missing or corrupt chunk raises `PayloadStoreError`
(naming the task and the key): an activity whose input it is fails at once, non-retryable; a workflow task that
reads it fails with that message and is retried until the value is back (`PayloadStoreError` says why).

**Encrypted at rest.** With PAYLOAD_ENCRYPTION_KEYS set, the SDK hands the driver the encrypted payload; the
driver decrypts it, and seals each chunk with the same codec (AES-GCM, its key id inside). A chunk's key is then
an HMAC of its bytes under a key derived from the encryption key, so neither the value nor a plain hash of it
is at rest; without encryption the key is SHA-256.

Every process that reads or writes these histories (worker, gateway, codec server, scripts, the replayer of an
evicted task) needs the same store: one machine or a shared volume for the SQLite file, a bucket for a cluster.
`python -m orchestrator.payload_store prune [--every SECONDS]` deletes the values of tasks whose histories
Temporal no longer has (once, or in a loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.converter import (
    DefaultFailureConverter,
    ExternalStorage,
    PayloadConverter,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.codec import ENCODING as ENCRYPTED
from orchestrator.codec import KEY_ID_METADATA, TENANT_METADATA, EncryptionCodec, tenant_of
from orchestrator.processes import exit_now

logger = logging.getLogger(__name__)

STORE_ENV = "PAYLOAD_STORE"
THRESHOLD_ENV = "PAYLOAD_STORE_THRESHOLD"
DEFAULT_THRESHOLD = 16 * 1024
DRIVER_NAME = "local"
NO_TASK = "_no-task"
CHUNK_MAX = 128 * 1024
BOUNDARY_MASK = 0xFF  # about one line in 256 ends a chunk
SEPARATOR = b"\\n"  # a newline inside a JSON string
MANIFEST_PREFIX = b"payload-store-manifest-v1\n"
PAYLOAD_KEY_PREFIX = "p"  # a manifest stored under its payload's key (hex keys never start with "p")
_MAC_LABEL = b"coding-orchestrator payload-store chunk key v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    task TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (task, key)
) WITHOUT ROWID;
"""


class PayloadStoreError(ApplicationError):
    """A stored value is missing or corrupt: the task cannot go on with it until the value is back.

    Raised while a worker decodes a workflow task (a start input, an activity's result read back by a replay), it
    fails that workflow task with this message, and Temporal retries the task until the value is readable again
    (the store fixed or shared, the file restored) or someone terminates it: the run cannot be failed from there,
    because a replay that sent any command history does not have is a nondeterminism error. In an activity's
    input it fails the activity at once, non-retryable (`FailureConverter`).
    """

    def __init__(self, message: str, non_retryable: bool = False) -> None:
        super().__init__(message, type="PayloadStoreError", non_retryable=non_retryable)


def unwrapped(exception: BaseException) -> BaseException:
    """`exception`, or the PayloadStoreError an SDK wrapper hides: the activity worker reports an input that does
    not decode as a retryable `ApplicationError("Failed decoding arguments")` whatever the cause, so a value
    missing from the store would be retried until the retry policy runs out. The failure says what the cause says:
    the store's error (non-retryable, naming the task and the key), behind the wrapper's words."""
    cause = exception.__cause__
    if (
        not isinstance(exception, ApplicationError)
        or exception.non_retryable
        or not isinstance(cause, PayloadStoreError)
    ):
        return exception
    promoted = PayloadStoreError(f"{exception.message}: {cause.message}", non_retryable=True)
    promoted.__traceback__, promoted.__cause__ = cause.__traceback__, cause.__cause__
    return promoted


class FailureConverter(DefaultFailureConverter):
    """The SDK's failure converter, but an activity whose input is missing from the store fails for good
    (`unwrapped`)."""

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        super().to_failure(unwrapped(exception), payload_converter, failure)


class EncodedFailureConverter(FailureConverter):
    """`FailureConverter` with the message and stack trace in the encoded (encrypted) attributes."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


def chunks(data: bytes) -> list[bytes]:
    """Content-defined chunks of `data`: the same run of lines gives the same chunks wherever it sits.

    A chunk ends after a line when the hash of that line and the one before it has its low bits zero (about one
    line in 256), whatever the chunk's start, so two payloads sharing a run of lines cut it at the same places;
    a chunk longer than CHUNK_MAX is cut there.
    """
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    previous = 0
    pieces = data.split(SEPARATOR)
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        if i < last:
            piece += SEPARATOR
        while size + len(piece) > CHUNK_MAX:  # a huge line, or no newlines at all: fixed cuts
            room = CHUNK_MAX - size
            current.append(piece[:room])
            out.append(b"".join(current))
            current, size, piece = [], 0, piece[room:]
        current.append(piece)
        size += len(piece)
        line_hash = zlib.crc32(piece, previous)
        previous = zlib.crc32(piece)
        if line_hash & BOUNDARY_MASK == 0:
            out.append(b"".join(current))
            current, size = [], 0
    if current:
        out.append(b"".join(current))
    return out


@dataclass
class StoreCounters:
    """What this driver wrote: payloads (and how many were stored before), new chunks and their bytes, chunks
    found already stored."""

    payloads: int = 0
    payloads_known: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    chunks_deduplicated: int = 0


class ChunkSealer:
    """Chunk keys and at-rest form: SHA-256 and plain bytes, or an HMAC key and AES-GCM with the codec."""

    def __init__(self, codec: EncryptionCodec | None) -> None:
        self.codec = codec
        self._mac_keys = {
            key_id: hmac.digest(key, _MAC_LABEL, "sha256") for key_id, key in (codec.keys if codec else {}).items()
        }

    def key(self, chunk: bytes, key_id: str | None = None) -> str:
        if self.codec is None:
            return hashlib.sha256(chunk).hexdigest()
        return hmac.new(self._mac_keys[key_id or self.codec.active_key_id], chunk, "sha256").hexdigest()

    def seal(self, chunk: bytes) -> bytes:
        if self.codec is None:
            return chunk
        return self.codec.encrypt(Payload(data=chunk)).SerializeToString()

    def open(self, task: str, key: str, value: bytes, verify: bool = True) -> tuple[bytes, str | None]:
        """The chunk's bytes and the id of the key that sealed it, verified against its key unless `verify` is
        False (a manifest stored under its payload's key: the payload is verified instead); PayloadStoreError
        when they do not match."""
        try:
            if self.codec is None:
                chunk, key_id = value, None
            else:
                sealed = Payload.FromString(value)
                if sealed.metadata.get("encoding") != ENCRYPTED:
                    raise ValueError("not encrypted, but PAYLOAD_ENCRYPTION_KEYS is set")
                key_id = sealed.metadata[KEY_ID_METADATA].decode()
                chunk = self.codec.decrypt(sealed).data
            ok = not verify or hmac.compare_digest(self.key(chunk, key_id), key)
        except Exception as exc:  # a wrong key id, a failed authentication, not a payload
            raise PayloadStoreError(f"task {task!r}: stored value {key} is unreadable: {exc}") from exc
        if not ok:
            raise PayloadStoreError(f"task {task!r}: stored value {key} is corrupt (its bytes do not match its key)")
        return chunk, key_id


class ChunkBackend(ABC):
    """Where a driver's sealed chunks live: immutable values under (task, key), grouped by task.

    The chunking, sealing and manifests are the driver's (ChunkStorageDriver); a backend only keeps bytes. Two ship:
    SqliteChunkBackend (one file, one machine) and, in `orchestrator.payload_store_s3`, S3ChunkBackend (a bucket
    every machine reaches).
    """

    where: str  # named in errors: the file or the bucket

    @abstractmethod
    async def existing(self, task: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` `task` already has."""

    @abstractmethod
    async def write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        """Store each (key, value), never overwriting a key already stored; return once all are durable. The last
        value (a payload's manifest) must not be visible before the others are."""

    @abstractmethod
    async def read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        """The stored values of `keys`, in order; None for a missing one."""

    @abstractmethod
    async def tasks(self) -> dict[str, float]:
        """Every task with stored values, and when its newest value was written (Unix time)."""

    @abstractmethod
    async def task_bytes(self, task: str) -> int:
        """The bytes `task`'s values take."""

    @abstractmethod
    async def delete_task(self, task: str) -> int:
        """Delete every value of `task`; the bytes freed."""


class SqliteChunkBackend(ChunkBackend):
    """Chunks in one SQLite file (table `chunks`, key `(task, key)`), shared by every process of one machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    def _existing(self, task: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                batch = list(keys[start : start + 500])
                marks = ",".join("?" * len(batch))
                rows = db.execute(f"SELECT key FROM chunks WHERE task = ? AND key IN ({marks})", [task, *batch])
                found.update(row[0] for row in rows)
        return found

    def _write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        with self._connect() as db, db:  # one transaction: the manifest and its chunks, or nothing
            db.executemany(
                "INSERT OR IGNORE INTO chunks (task, key, value, created) VALUES (?, ?, ?, ?)",
                [(task, key, value, now) for key, value in values],
            )

    def _read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        with self._connect() as db:
            out = []
            for key in keys:
                row = db.execute("SELECT value FROM chunks WHERE task = ? AND key = ?", (task, key)).fetchone()
                out.append(None if row is None else bytes(row[0]))
            return out

    def _tasks(self) -> dict[str, float]:
        with self._connect() as db:
            return dict(db.execute("SELECT task, MAX(created) FROM chunks GROUP BY task").fetchall())

    def _task_bytes(self, task: str) -> int:
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM chunks WHERE task = ?", (task,)).fetchone()
        return int(row[0])

    def _delete_task(self, task: str) -> int:
        freed = self._task_bytes(task)
        with self._connect() as db, db:
            db.execute("DELETE FROM chunks WHERE task = ?", (task,))
        return freed

    async def existing(self, task: str, keys: Sequence[str]) -> set[str]:
        return await asyncio.to_thread(self._existing, task, keys)

    async def write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        await asyncio.to_thread(self._write, task, values)

    async def read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        return await asyncio.to_thread(self._read_many, task, keys)

    async def tasks(self) -> dict[str, float]:
        return await asyncio.to_thread(self._tasks)

    async def task_bytes(self, task: str) -> int:
        return await asyncio.to_thread(self._task_bytes, task)

    async def delete_task(self, task: str) -> int:
        return await asyncio.to_thread(self._delete_task, task)


class ChunkStorageDriver(StorageDriver):
    """The SDK's storage driver over a ChunkBackend: payloads cut into chunks, each sealed and stored once per task,
    and a manifest naming them; every read verified."""

    def __init__(self, backend: ChunkBackend, codec: EncryptionCodec | None, name: str, type_: str) -> None:
        self.backend = backend
        self._name = name
        self._type = type_
        self.sealer = ChunkSealer(codec)
        self.counters = StoreCounters()

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    # ----------------------------------------------------------------- writing

    async def put(self, task: str, data: bytes) -> tuple[str, int]:
        """Store `data` as chunks and then its manifest; (manifest key, payload bytes).

        The manifest is stored under the payload's own key, so a payload stored before (every command's input
        again when an evicted task replays) costs one hash and one lookup, not a chunking."""
        manifest_key = PAYLOAD_KEY_PREFIX + self.sealer.key(data)
        if await self.backend.existing(task, [manifest_key]):
            self.counters.payloads += 1
            self.counters.payloads_known += 1
            return manifest_key, len(data)
        pieces = chunks(data)
        keys = [self.sealer.key(piece) for piece in pieces]
        wanted = dict(zip(keys, pieces, strict=True))
        wanted[manifest_key] = MANIFEST_PREFIX + "\n".join(keys).encode()  # last: written once its chunks are
        known = await self.backend.existing(task, list(wanted))
        new = [(key, self.sealer.seal(chunk)) for key, chunk in wanted.items() if key not in known]
        if new:
            await self.backend.write(task, new)
        self.counters.payloads += 1
        self.counters.chunks_written += len(new)
        self.counters.bytes_written += sum(len(value) for _, value in new)
        self.counters.chunks_deduplicated += len(wanted) - len(new)
        return manifest_key, len(data)

    # ----------------------------------------------------------------- reading

    async def get(self, task: str, manifest_key: str) -> bytes:
        """The payload bytes a manifest names, every chunk verified; PayloadStoreError when one is missing."""
        by_payload = manifest_key.startswith(PAYLOAD_KEY_PREFIX)  # else (older claims) by the manifest's bytes
        [(manifest, key_id)] = await self._chunks(task, [manifest_key], verify=not by_payload)
        if not manifest.startswith(MANIFEST_PREFIX):
            raise PayloadStoreError(f"task {task!r}: stored value {manifest_key} is not a manifest")
        keys = [key for key in manifest[len(MANIFEST_PREFIX) :].decode().split("\n") if key]
        data = b"".join(chunk for chunk, _ in await self._chunks(task, keys))
        if by_payload and not hmac.compare_digest(PAYLOAD_KEY_PREFIX + self.sealer.key(data, key_id), manifest_key):
            raise PayloadStoreError(
                f"task {task!r}: stored value {manifest_key} is corrupt (its chunks do not match it)"
            )
        return data

    async def _chunks(self, task: str, keys: list[str], verify: bool = True) -> list[tuple[bytes, str | None]]:
        """Each key's chunk and the id of the key that sealed it (`ChunkSealer.open`)."""
        values = await self.backend.read_many(task, keys)
        out = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                raise PayloadStoreError(
                    f"task {task!r}: stored value {key} is missing from {self.backend.where} (deleted past "
                    f"retention, or this process does not share the workers' {STORE_ENV})"
                )
            out.append(self.sealer.open(task, key, value, verify))
        return out

    # ----------------------------------------------------------------- the SDK's driver interface

    async def store(self, context: StorageDriverStoreContext, payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        task = (context.target.id if context.target is not None else None) or NO_TASK
        claims = []
        for payload in payloads:
            plain = self.sealer.codec.decrypt(payload) if self.sealer.codec else payload
            if (tenant := tenant_of(payload)) is not None:  # the codec server shows a stored value to its tenant only
                plain.metadata[TENANT_METADATA] = tenant.encode()
            data = plain.SerializeToString(deterministic=True)
            key, size = await self.put(task, data)
            claims.append(StorageDriverClaim(claim_data={"task": task, "manifest": key, "bytes": str(size)}))
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        payloads = []
        for claim in claims:
            task, key = claim.claim_data.get("task", NO_TASK), claim.claim_data.get("manifest", "")
            data = await self.get(task, key)
            try:
                payloads.append(Payload.FromString(data))
            except Exception as exc:
                raise PayloadStoreError(f"task {task!r}: stored value {key} is not a payload: {exc}") from exc
        return payloads  # plaintext: the codec's decode passes it through

    # ----------------------------------------------------------------- housekeeping

    async def task_bytes(self, task: str) -> int:
        return await self.backend.task_bytes(task)

    async def tasks(self) -> dict[str, float]:
        """Every task with stored values, and when its newest value was written."""
        return await self.backend.tasks()

    async def delete_task(self, task: str) -> int:
        """Delete every value of `task`; the bytes freed."""
        return await self.backend.delete_task(task)


class SqliteStorageDriver(ChunkStorageDriver):
    """The local driver (name `local`, as existing histories name it): chunks in one SQLite file."""

    def __init__(self, path: str | Path, codec: EncryptionCodec | None = None, name: str = DRIVER_NAME) -> None:
        self.path = Path(path)
        super().__init__(SqliteChunkBackend(self.path), codec, name, "coding-orchestrator.sqlite-chunks")


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


def _fingerprint(*values: str | bytes | None) -> str:
    digest = hashlib.sha256()
    for value in values:
        digest.update(value.encode() if isinstance(value, str) else value or b"")
        digest.update(b"\0")
    return digest.hexdigest()


_drivers: dict[tuple[str, str], ChunkStorageDriver] = {}  # one per store, key set and credentials


def store_driver(codec: EncryptionCodec | None, environ: Mapping[str, str] | None = None) -> ChunkStorageDriver | None:
    """The driver PAYLOAD_STORE names: `s3://bucket[/prefix]` (with the standard AWS_* variables) or a SQLite
    file; None when it is unset. One per process and configuration."""
    env = os.environ if environ is None else environ
    location = env.get(STORE_ENV, "").strip()
    if not location:
        return None
    keys = _fingerprint(
        *(f"{key_id}={hashlib.sha256(key).hexdigest()}" for key_id, key in (codec.keys if codec else {}).items())
    )
    if location.startswith("s3://"):
        from orchestrator.payload_store_s3 import AWS_ENV, S3ChunkStorageDriver

        cache_key = (location, _fingerprint(keys, *(env.get(name) for name in AWS_ENV)))
        driver = _drivers.get(cache_key)
        if driver is None:
            driver = _drivers[cache_key] = S3ChunkStorageDriver.from_url(location, env, codec)
        return driver
    cache_key = (str(Path(location).resolve()), keys)
    driver = _drivers.get(cache_key)
    if driver is None:
        driver = _drivers[cache_key] = SqliteStorageDriver(location, codec)
    return driver


def external_storage(codec: EncryptionCodec | None, environ: Mapping[str, str] | None = None) -> ExternalStorage | None:
    """The `ExternalStorage` PAYLOAD_STORE describes, or None when it is unset (payloads stay inline)."""
    env = os.environ if environ is None else environ
    driver = store_driver(codec, env)
    if driver is None:
        return None
    return ExternalStorage(drivers=[driver], payload_size_threshold=threshold(env))


REFERENCE_TYPE = b"temporal.api.sdk.v1.ExternalStorageReference"


async def resolve_references(storage: ExternalStorage | None, payloads: Sequence[Payload]) -> list[Payload]:
    """`payloads` with each of the SDK's storage references replaced by the value it names (the codec server's
    /decode does this, so the Web UI and the CLI show stored values as they show inline ones)."""
    out = list(payloads)
    for i, payload in enumerate(payloads):
        if (
            payload.metadata.get("encoding") != b"json/protobuf"
            or payload.metadata.get("messageType") != REFERENCE_TYPE
        ):
            continue
        if storage is None:
            raise PayloadStoreError(f"a payload is stored outside history, but {STORE_ENV} is not set here")
        reference = json.loads(payload.data)
        driver = next((d for d in storage.drivers if d.name() == reference.get("driverName")), None)
        if driver is None:
            raise PayloadStoreError(f"a payload is stored by driver {reference.get('driverName')!r}, unknown here")
        claim = StorageDriverClaim(claim_data=dict(reference.get("claimData", {})))
        [out[i]] = await driver.retrieve(StorageDriverRetrieveContext(), [claim])
    return out


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


async def _prune_main(args: argparse.Namespace) -> None:
    from orchestrator.temporal import connect_client

    driver = store_driver(EncryptionCodec.from_env())
    if driver is None:
        raise SystemExit(f"{STORE_ENV} is not set: there is no payload store to prune")
    client = await connect_client()
    while True:
        try:
            await prune_round(driver, client, args.dry_run, args.min_age)
            if args.health_file:
                await asyncio.to_thread(Path(args.health_file).write_text, f"{time.time()}\n", "utf-8")
        except Exception:
            if args.every is None:
                raise
            logger.exception("prune round failed; the next one runs in %.0f s", args.every)  # e.g. Temporal away
        if args.every is None:
            return
        await asyncio.sleep(args.every)


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


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_prune_main(args))
    exit_now(0)


if __name__ == "__main__":
    main()
