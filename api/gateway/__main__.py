"""`python -m api.gateway`: serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT (127.0.0.1:8002)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from api.auth import ApiKeyConfigError

from .main import create_app
from .settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except ApiKeyConfigError as exc:
        logging.getLogger("api.gateway").error("refusing to start: %s", exc)
        sys.exit(2)
    uvicorn.run(app, host=settings.gateway_host, port=settings.gateway_port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
