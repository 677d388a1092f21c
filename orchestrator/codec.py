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

**Per tenant.** A payload of a tenant's task is encrypted with that tenant's data key, derived from the key and
the tenant name (HKDF-SHA256), and names the tenant in its metadata (`encryption-tenant`, also in the associated
data), so the codec server can decode for each caller only what is theirs. Which tenant: inside
`encrypting_for(tenant)` (the gateway, for what a caller sends), else the tenant of the last payload this process
decoded for the same workflow id (the codec is context-aware: the SDK gives it the workflow id of each payload, so a
worker encrypts a task's commands, activity results and queries for the tenant its input was encrypted for; a
payload naming no tenant, plain or not, makes the workflow nobody's until a tenant's payload comes). A payload
with no tenant known (a task started by the `temporal` CLI, or anything written before tenants) is encrypted with
the key itself and names no tenant: only the operator sees it through the codec server.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from copy import copy
from typing import Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

KEYS_ENV = "PAYLOAD_ENCRYPTION_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
TENANT_METADATA = "encryption-tenant"
NONCE_BYTES = 12
TENANT_KEY_INFO = b"coding-orchestrator tenant data key\0"
MAX_KNOWN_TASKS = 100_000  # workflow ids whose tenant a process remembers (least recently used forgotten)
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class EncryptionConfigError(ValueError):
    """PAYLOAD_ENCRYPTION_KEYS is malformed; the process must not start with it."""


class DecryptionError(ValueError):
    """A payload cannot be decrypted: unknown key id, or tampered / corrupt data."""


_encrypting_for: ContextVar[str | None] = ContextVar("encrypting_for", default=None)


@contextmanager
def encrypting_for(tenant: str) -> Iterator[None]:
    """Payloads encoded inside this block are encrypted for `tenant` (and the workflow ids they go to are
    remembered as that tenant's)."""
    token = _encrypting_for.set(tenant)
    try:
        yield
    finally:
        _encrypting_for.reset(token)


def tenant_of(payload: Payload) -> str | None:
    """The tenant a payload names (`encryption-tenant`), or None."""
    raw = payload.metadata.get(TENANT_METADATA)
    return raw.decode("utf-8", "replace") if raw else None


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class TaskTenants:
    """Workflow id → tenant, as this process last saw it in a payload of that workflow (bounded, LRU)."""

    def __init__(self, size: int = MAX_KNOWN_TASKS) -> None:
        self._size = size
        self._tenants: OrderedDict[str, str] = OrderedDict()

    def get(self, workflow_id: str) -> str | None:
        tenant = self._tenants.get(workflow_id)
        if tenant is not None:
            self._tenants.move_to_end(workflow_id)
        return tenant

    def set(self, workflow_id: str, tenant: str | None) -> None:
        if tenant is None:
            self._tenants.pop(workflow_id, None)
            return
        self._tenants[workflow_id] = tenant
        self._tenants.move_to_end(workflow_id)
        while len(self._tenants) > self._size:
            self._tenants.popitem(last=False)


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


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-GCM encryption of whole payloads; the first key encrypts, all keys decrypt; per tenant when known."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise EncryptionConfigError("EncryptionCodec needs at least one key")
        self.keys = dict(keys)  # also the source of the payload store's chunk-key HMAC keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._tenant_ciphers: dict[tuple[str, str], AESGCM] = {}
        self.active_key_id = next(iter(keys))
        self.tenants = TaskTenants()  # shared by the copies `with_context` makes
        self.workflow_id: str | None = None  # of the payloads this copy encodes and decodes (SDK context)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EncryptionCodec | None:
        """The codec PAYLOAD_ENCRYPTION_KEYS describes, or None when it is unset or empty (encryption off)."""
        env = os.environ if environ is None else environ
        keys = parse_keys(env.get(KEYS_ENV, ""))
        return cls(keys) if keys else None

    def with_context(self, context: SerializationContext) -> Self:
        """A copy for the payloads of one workflow (its id from the SDK's context), sharing keys and tenants."""
        scoped = copy(self)
        scoped.workflow_id = getattr(context, "workflow_id", None)
        return scoped

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def _cipher(self, key_id: str, tenant: str | None) -> AESGCM | None:
        if tenant is None or key_id not in self.keys:
            return self._ciphers.get(key_id)
        cipher = self._tenant_ciphers.get((key_id, tenant))
        if cipher is None:
            hkdf = HKDF(hashes.SHA256(), len(self.keys[key_id]), salt=None, info=TENANT_KEY_INFO + tenant.encode())
            cipher = self._tenant_ciphers[key_id, tenant] = AESGCM(hkdf.derive(self.keys[key_id]))
        return cipher

    @staticmethod
    def _associated_data(key_id: str, tenant: str | None) -> bytes:
        return key_id.encode() if tenant is None else f"{key_id}\0{tenant}".encode()

    def encrypt(self, payload: Payload, tenant: str | None = None) -> Payload:
        """Encrypted with the active key, or with `tenant`'s data key derived from it."""
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._cipher(key_id, tenant)
        assert cipher is not None
        sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._associated_data(key_id, tenant))
        metadata = {"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}
        if tenant is not None:
            metadata[TENANT_METADATA] = tenant.encode()
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if not is_encrypted(payload):
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        tenant = tenant_of(payload)
        cipher = self._cipher(key_id, tenant)
        if cipher is None:
            raise DecryptionError(
                f"payload was encrypted with key {key_id!r}, which is not in {KEYS_ENV} (known: {self.key_ids})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], self._associated_data(key_id, tenant))
        except Exception as exc:  # cryptography raises InvalidTag for a wrong key or tampered data
            raise DecryptionError(f"payload encrypted with key {key_id!r} failed authentication") from exc
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        tenant = _encrypting_for.get()
        if self.workflow_id is not None:
            if tenant is not None:
                self.tenants.set(self.workflow_id, tenant)
            else:
                tenant = self.tenants.get(self.workflow_id)
        return [self.encrypt(p, tenant) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.workflow_id is not None:  # the last payload of a workflow says whose it is (None: nobody's)
            for payload in payloads:
                self.tenants.set(self.workflow_id, tenant_of(payload))
        return [self.decrypt(p) for p in payloads]
