"""`python -m orchestrator.payload_store prune [--every SECONDS]`: delete the values of tasks whose histories
Temporal no longer has (once, or in a loop)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store import STORE_ENV, parse_args, prune_round, store_driver
from orchestrator.temporal import connect_client, exit_now

logger = logging.getLogger(__name__)


def _write_health(path: Path) -> None:
    """The time of the last good round, written beside the file and renamed over it: a reader (a probe) never
    finds it empty or half written."""
    part = path.with_name(f".{path.name}.part")
    part.write_text(f"{time.time()}\n", "utf-8")
    part.replace(path)


async def _prune_main(args: argparse.Namespace) -> None:
    driver = store_driver(EncryptionCodec.from_env())
    if driver is None:
        raise SystemExit(f"{STORE_ENV} is not set: there is no payload store to prune")
    client = await connect_client()
    while True:
        try:
            await prune_round(driver, client, args.dry_run, args.min_age)
            if args.health_file:
                await asyncio.to_thread(_write_health, Path(args.health_file))
        except Exception:
            if args.every is None:
                raise
            logger.exception("prune round failed; the next one runs in %.0f s", args.every)  # e.g. Temporal away
        if args.every is None:
            return
        await asyncio.sleep(args.every)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_prune_main(args))
    exit_now(0)


if __name__ == "__main__":
    main()
