"""A codec server: lets the Temporal Web UI and `temporal --codec-endpoint` show encrypted payloads as plain JSON.

    python -m orchestrator.codec_server          # http://127.0.0.1:8081 (CODEC_SERVER_HOST, CODEC_SERVER_PORT)

Endpoints (the Temporal codec-server JSON format, `{"payloads": [{"metadata": {k: base64}, "data": base64}]}`):
`POST /decode`, `POST /encode`, and the same under `/{namespace}/`. Every call needs an API key of
`api/auth.py` as `X-API-KEY: <key>` or `Authorization: Bearer <key>` (what the Web UI and the CLI's
`--codec-auth` send). CORS allows the Web UI's origin (CODEC_CORS_ORIGINS, default http://localhost:8233).
Keys come from PAYLOAD_ENCRYPTION_KEYS, as for every client; without them the server refuses to start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import uvicorn
from fastapi import Body, Depends, FastAPI, Header, HTTPException, status
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.auth import ApiKeyRegistry
from orchestrator.codec import DecryptionError, EncryptionCodec

logger = logging.getLogger("codec_server")

DEFAULT_PORT = 8081
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CORS_ORIGINS = "http://localhost:8233"
MAX_PAYLOADS = 10_000


def create_app(codec: EncryptionCodec, registry: ApiKeyRegistry, cors_origins: list[str] | None = None) -> FastAPI:
    app = FastAPI(title="Payload codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins if cors_origins is not None else [DEFAULT_CORS_ORIGINS],
        allow_credentials=True,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-API-KEY", "X-Namespace"],
    )

    def tenant(
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> str:
        presented = x_api_key
        if not presented and authorization:
            scheme, _, value = authorization.partition(" ")
            presented = value.strip() if scheme.lower() == "bearer" else None
        found = registry.tenant_for(presented)
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid API key (X-API-KEY or Authorization: Bearer)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    def parse(body: dict[str, Any]) -> Payloads:
        try:
            payloads = json_format.ParseDict(body, Payloads(), ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a payloads document: {exc}") from None
        if len(payloads.payloads) > MAX_PAYLOADS:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"more than {MAX_PAYLOADS} payloads")
        return payloads

    def endpoint(
        transform: Callable[[Payloads], Awaitable[Payloads]],
    ) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def handler(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
            result = await transform(parse(body))
            return json_format.MessageToDict(result)

        return handler

    async def decode(payloads: Payloads) -> Payloads:
        try:
            return Payloads(payloads=await codec.decode(payloads.payloads))
        except DecryptionError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None

    async def encode(payloads: Payloads) -> Payloads:
        return Payloads(payloads=await codec.encode(payloads.payloads))

    for prefix in ("", "/{namespace}"):
        auth = [Depends(tenant)]
        app.add_api_route(f"{prefix}/decode", endpoint(decode), methods=["POST"], dependencies=auth)
        app.add_api_route(f"{prefix}/encode", endpoint(encode), methods=["POST"], dependencies=auth)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "active_key_id": codec.active_key_id}

    return app


def app_from_env(environ: Mapping[str, str] | None = None) -> FastAPI:
    env = os.environ if environ is None else environ
    codec = EncryptionCodec.from_env(env)
    if codec is None:
        raise SystemExit("PAYLOAD_ENCRYPTION_KEYS is not set: there is nothing for a codec server to decode")
    origins = [o.strip() for o in env.get("CODEC_CORS_ORIGINS", DEFAULT_CORS_ORIGINS).split(",") if o.strip()]
    return create_app(codec, ApiKeyRegistry.from_env(env), origins)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    app = app_from_env()
    host = os.environ.get("CODEC_SERVER_HOST", DEFAULT_HOST)
    port = int(os.environ.get("CODEC_SERVER_PORT", DEFAULT_PORT))
    logger.info("codec server on http://%s:%s", host, port)
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
