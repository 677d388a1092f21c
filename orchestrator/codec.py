"""Optional payload encryption: an AES-GCM `PayloadCodec` with key ids and key rotation.

Keys come from the environment, newest first::

    PAYLOAD_ENCRYPTION_KEYS="k2=<base64 key>,k1=<base64 key>"

The first key encrypts; every listed key decrypts, so rotating means putting a new key in front and keeping the
old ones until no history that uses them is left (retention). Keys are 16, 24 or 32 random bytes, base64-encoded:

    python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'

Unset (or empty), payloads are stored as plain JSON. Every encrypted payload carries the id of its key in the
metadata (`encryption-key-id`) next to `encoding: binary/encrypted`; the whole original payload (metadata and
data) is the plaintext, so the original encoding is hidden too. The key id is also the AES-GCM associated data,
so a payload cannot be relabelled to another key. Payloads without the encrypted encoding pass through decode
unchanged (histories written before encryption was turned on stay readable).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

KEYS_ENV = "PAYLOAD_ENCRYPTION_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class EncryptionConfigError(ValueError):
    """PAYLOAD_ENCRYPTION_KEYS is malformed; the process must not start with it."""


class DecryptionError(ValueError):
    """A payload cannot be decrypted: unknown key id, or tampered / corrupt data."""


def parse_keys(text: str) -> dict[str, bytes]:
    """`"k2=<base64>,k1=<base64>"` → {"k2": key, "k1": key}, in order (the first is the active key)."""
    keys: dict[str, bytes] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key_id, sep, encoded = item.partition("=")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not sep or not key_id or not encoded:
            raise EncryptionConfigError(f"{KEYS_ENV}: expected 'key_id=<base64 key>' entries")
        if not _KEY_ID_RE.match(key_id):
            raise EncryptionConfigError(f"{KEYS_ENV}: key id {key_id!r} must match {_KEY_ID_RE.pattern}")
        if key_id in keys:
            raise EncryptionConfigError(f"{KEYS_ENV}: key id {key_id!r} is listed twice")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EncryptionConfigError(f"{KEYS_ENV}: key {key_id!r} is not valid base64") from exc
        if len(key) not in (16, 24, 32):
            raise EncryptionConfigError(
                f"{KEYS_ENV}: key {key_id!r} is {len(key)} bytes; AES-GCM needs 16, 24 or 32 random bytes"
            )
        keys[key_id] = key
    return keys


class EncryptionCodec(PayloadCodec):
    """AES-GCM encryption of whole payloads; the first key encrypts, all keys decrypt."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise EncryptionConfigError("EncryptionCodec needs at least one key")
        self.keys = dict(keys)  # also the source of the payload store's chunk-key HMAC keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = next(iter(keys))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EncryptionCodec | None:
        """The codec PAYLOAD_ENCRYPTION_KEYS describes, or None when it is unset or empty (encryption off)."""
        env = os.environ if environ is None else environ
        keys = parse_keys(env.get(KEYS_ENV, ""))
        return cls(keys) if keys else None

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"payload was encrypted with key {key_id!r}, which is not in {KEYS_ENV} (known: {self.key_ids})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except Exception as exc:  # cryptography raises InvalidTag for a wrong key or tampered data
            raise DecryptionError(f"payload encrypted with key {key_id!r} failed authentication") from exc
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]
