"""The `ExternalStorage` PAYLOAD_STORE describes (one driver per store and key set), and reading its references."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import ExternalStorage, StorageDriverClaim, StorageDriverRetrieveContext

from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store._driver import STORE_ENV, ChunkStorageDriver
from orchestrator.payload_store._errors import PayloadStoreError
from orchestrator.payload_store.sqlite import SqliteStorageDriver

THRESHOLD_ENV = "PAYLOAD_STORE_THRESHOLD"
DEFAULT_THRESHOLD = 16 * 1024


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
        from orchestrator.payload_store.s3 import AWS_ENV, S3ChunkStorageDriver

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
