"""The SDK's storage driver over a chunk backend, and the backend's abstract interface."""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from orchestrator.codec import TENANT_METADATA, EncryptionCodec, tenant_of
from orchestrator.payload_store._chunks import ChunkSealer, chunks
from orchestrator.payload_store._errors import PayloadStoreError

STORE_ENV = "PAYLOAD_STORE"
NO_TASK = "_no-task"
MANIFEST_PREFIX = b"payload-store-manifest-v1\n"
PAYLOAD_KEY_PREFIX = "p"  # a manifest stored under its payload's key (hex keys never start with "p")


@dataclass
class StoreCounters:
    """What this driver wrote: payloads (and how many were stored before), new chunks and their bytes, chunks
    found already stored."""

    payloads: int = 0
    payloads_known: int = 0
    chunks_written: int = 0
    bytes_written: int = 0
    chunks_deduplicated: int = 0


class ChunkBackend(ABC):
    """Where a driver's sealed chunks live: immutable values under (task, key), grouped by task.

    The chunking, sealing and manifests are the driver's (ChunkStorageDriver); a backend only keeps bytes. Two ship:
    SqliteChunkBackend (one file, one machine) and, in `orchestrator.payload_store.s3`, S3ChunkBackend (a bucket
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
