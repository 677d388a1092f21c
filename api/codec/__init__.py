"""The codec server: lets the Temporal Web UI and `temporal --codec-endpoint` show encrypted payloads as plain JSON.

    python -m api.codec          # http://127.0.0.1:8081 (CODEC_SERVER_HOST, CODEC_SERVER_PORT)

Endpoints (the Temporal codec-server JSON format, `{"payloads": [{"metadata": {k: base64}, "data": base64}]}`):
`POST /decode`, `POST /encode`, and the same under `/{namespace}/`. Every call needs an API key of
`api/auth.py` as `X-API-KEY: <key>` or `Authorization: Bearer <key>` (what the Web UI and the CLI's
`--codec-auth` send). CORS allows the Web UI's origin (CODEC_CORS_ORIGINS, default http://localhost:8233).
Keys come from PAYLOAD_ENCRYPTION_KEYS, as for every client; without them the server refuses to start.
The payload codec itself is `orchestrator/codec.py`, which every client uses.
"""
