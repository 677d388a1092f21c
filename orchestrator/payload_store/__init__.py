"""Large payloads live outside history, each piece once: a content-addressed chunk store behind the SDK's
`ExternalStorage`, in a SQLite file or an S3 bucket.

With PAYLOAD_STORE set, every payload of at least PAYLOAD_STORE_THRESHOLD bytes (default 16 KiB) that a client or
worker sends to Temporal goes to the store, and history holds the SDK's small reference instead
(`{"driverName": "local", "claimData": {"task", "manifest", "bytes"}}`, about 200 bytes). PAYLOAD_STORE is
either a SQLite file (`make run`: `data/payloads.sqlite`; driver `local`) or `s3://bucket/prefix` (driver
`s3-chunks`, objects `<prefix>/<task>/<key>`, configured by the standard AWS_* variables: see
`orchestrator.payload_store.s3`). One driver, ChunkStorageDriver, does the chunking, sealing, manifests and
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

from orchestrator.payload_store._chunks import CHUNK_MAX, ChunkSealer, chunks
from orchestrator.payload_store._driver import STORE_ENV, ChunkBackend, ChunkStorageDriver, StoreCounters
from orchestrator.payload_store._errors import EncodedFailureConverter, FailureConverter, PayloadStoreError, unwrapped
from orchestrator.payload_store._prune import PRUNE_MIN_AGE_SECONDS, parse_args, prune, prune_round, workflow_exists
from orchestrator.payload_store._storage import (
    DEFAULT_THRESHOLD,
    REFERENCE_TYPE,
    THRESHOLD_ENV,
    external_storage,
    resolve_references,
    store_driver,
    threshold,
)
from orchestrator.payload_store.sqlite import DRIVER_NAME, SqliteChunkBackend, SqliteStorageDriver

__all__ = [
    "CHUNK_MAX",
    "DEFAULT_THRESHOLD",
    "DRIVER_NAME",
    "PRUNE_MIN_AGE_SECONDS",
    "REFERENCE_TYPE",
    "STORE_ENV",
    "THRESHOLD_ENV",
    "ChunkBackend",
    "ChunkSealer",
    "ChunkStorageDriver",
    "EncodedFailureConverter",
    "FailureConverter",
    "PayloadStoreError",
    "SqliteChunkBackend",
    "SqliteStorageDriver",
    "StoreCounters",
    "chunks",
    "external_storage",
    "parse_args",
    "prune",
    "prune_round",
    "resolve_references",
    "store_driver",
    "threshold",
    "unwrapped",
    "workflow_exists",
]
