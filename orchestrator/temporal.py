"""One way to connect to Temporal, used by every client: worker, gateway, scripts, benchmarks, tests' helpers.

The connection comes from `temporalio.envconfig` (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TLS variables, or a TOML profile), and every client uses the same data converter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig

from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store import EncodedFailureConverter, FailureConverter, external_storage

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "localhost:7233"


def data_converter(environ: Mapping[str, str] | None = None) -> DataConverter:
    """The data converter every client must share (pydantic models in, JSON on the wire).

    With PAYLOAD_ENCRYPTION_KEYS set (see `orchestrator.codec`), payloads are AES-GCM encrypted before they
    leave the process, and failure messages and stack traces are moved into an encrypted payload too.
    With PAYLOAD_STORE set (see `orchestrator.payload_store`), payloads of PAYLOAD_STORE_THRESHOLD bytes or more
    are stored there (chunked, each chunk once per task, sealed with the same codec), and history holds a
    reference to each.
    """
    codec = EncryptionCodec.from_env(environ)
    storage = external_storage(codec, environ)
    converter = pydantic_data_converter
    if storage is not None:  # a value missing from the store fails its activity at once (`payload_store.unwrapped`)
        converter = dataclasses.replace(converter, external_storage=storage, failure_converter_class=FailureConverter)
    if codec is None:
        return converter
    return dataclasses.replace(
        converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes
        if storage is None
        else EncodedFailureConverter,
    )


WAIT_LOG_EVERY = 30  # attempts between two "still waiting" lines


async def connect_client(attempts: int | None = 1, delay: float = 1.0) -> Client:
    """Connect as the environment says, with `data_converter()`; with `attempts` > 1 (None: no limit), wait for a
    server that is not up yet, saying once what it waits for and then every `WAIT_LOG_EVERY` attempts."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_ADDRESS)
    target = f"Temporal at {config.get('target_host')} (namespace {config.get('namespace') or 'default'})"
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            client = await Client.connect(**config, data_converter=data_converter())
        except RuntimeError as exc:
            if attempts is not None and attempt >= attempts:
                raise
            if attempt == 1:
                limit = "until it answers" if attempts is None else f"up to {attempts} times"
                logger.warning("waiting for %s: %s; trying again every %.0fs %s", target, exc, delay, limit)
            elif attempt % WAIT_LOG_EVERY == 0:
                logger.warning("still waiting for %s after %.0fs: %s", target, time.monotonic() - started, exc)
            await asyncio.sleep(delay)
            continue
        if attempt > 1:
            logger.info("connected to %s after %.0fs", target, time.monotonic() - started)
        return client


def exit_now(code: int = 0) -> NoReturn:
    """Leave a short-lived client process without finalizing the interpreter, once its work is done.

    Such a process can abort while the interpreter finalizes, when the SDK's core threads still hold the GIL
    ("PyGILState_Release: thread state must be current", temporalio/sdk-python#300): exit code 134 after a
    run that succeeded. Output is flushed first.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
