"""`python -m api.codec`: serve the codec server with uvicorn on CODEC_SERVER_HOST:CODEC_SERVER_PORT
(127.0.0.1:8081)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from api.auth import trusted_proxies

from .main import create_app
from .settings import CodecSettings


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = CodecSettings()
        app = create_app(settings)
    except ValueError as exc:  # bad settings, unsafe API keys, no or malformed PAYLOAD_ENCRYPTION_KEYS
        logging.getLogger("api.codec").error("refusing to start: %s", exc)
        sys.exit(2)
    uvicorn.run(
        app,
        host=settings.codec_server_host,
        port=settings.codec_server_port,
        log_level=settings.log_level.lower(),
        forwarded_allow_ips=trusted_proxies(),
    )


if __name__ == "__main__":
    main()
