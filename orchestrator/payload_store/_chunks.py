"""Cutting a payload into content-defined chunks, and each chunk's key and at-rest form (sealing)."""

from __future__ import annotations

import hashlib
import hmac
import zlib

from temporalio.api.common.v1 import Payload

from orchestrator.codec import ENCODING as ENCRYPTED
from orchestrator.codec import KEY_ID_METADATA, EncryptionCodec
from orchestrator.payload_store._errors import PayloadStoreError

CHUNK_MAX = 128 * 1024
BOUNDARY_MASK = 0xFF  # about one line in 256 ends a chunk
SEPARATOR = b"\\n"  # a newline inside a JSON string
_MAC_LABEL = b"coding-orchestrator payload-store chunk key v1"


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
