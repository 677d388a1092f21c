"""The codec server app: `create_app()` wires the payload codec, the keys, CORS for the Web UI and the routers."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import ApiKeyRegistry
from api.docs import install_docs
from api.errors import install_error_handlers
from orchestrator.codec import KEYS_ENV, EncryptionCodec
from orchestrator.payload_store import external_storage

from .deps import namespace
from .routes import ops, payloads
from .settings import CodecSettings


class CodecConfigError(ValueError):
    """No payload encryption key is configured: there is nothing for a codec server to decode."""


def create_app(
    settings: CodecSettings | None = None,
    registry: ApiKeyRegistry | None = None,
    codec: EncryptionCodec | None = None,
) -> FastAPI:
    """The app. Raises ApiKeyConfigError without a safe API key and CodecConfigError without PAYLOAD_ENCRYPTION_KEYS
    (the server must not start); `codec` and `registry` default to those the environment describes."""
    settings = settings or CodecSettings()
    registry = registry or ApiKeyRegistry.from_env()
    codec = codec or EncryptionCodec.from_env()
    if codec is None:
        raise CodecConfigError(f"{KEYS_ENV} is not set: there is nothing for a codec server to decode")
    app = FastAPI(
        title="Payload codec server",
        summary="Decrypt and encrypt Temporal payloads for the Web UI and the `temporal` CLI",
        version="1.0",
        docs_url=None,  # served by install_docs, from local files
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.registry = registry
    app.state.codec = codec
    app.state.storage = external_storage(codec)  # PAYLOAD_STORE: /decode shows stored values too
    install_error_handlers(app, "codec server")
    app.include_router(payloads.router)
    app.include_router(payloads.router, prefix="/{namespace}", dependencies=[Depends(namespace)])
    app.include_router(ops.router)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.codec_cors_origins,
        allow_credentials=True,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-API-KEY", "X-Namespace"],
    )
    return app
