"""`python -m api.gateway`: serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT (127.0.0.1:8002)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from limits.errors import ConfigurationError

from api.auth import trusted_proxies

from .main import create_app
from .settings import Settings


def main() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        app = create_app(settings)
    except (ValueError, ConfigurationError) as exc:  # bad settings, unsafe API keys, bad rate limit or storage
        logging.getLogger("api.gateway").error("refusing to start: %s", exc)
        sys.exit(2)
    uvicorn.run(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        forwarded_allow_ips=trusted_proxies(),
    )


if __name__ == "__main__":
    main()
