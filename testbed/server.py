"""Serve an ASGI app with uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

KEEP_ALIVE_SECONDS = 75  # how long the servers keep an idle connection open (ThreadedServer.start)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_listener() -> socket.socket:
    """A TCP socket bound to a free loopback port, for uvicorn's `sockets=`. Made with IPPROTO_TCP: asyncio turns
    Nagle's algorithm off (TCP_NODELAY) only on connections whose socket says TCP, and an accepted connection takes
    its listener's protocol. From a bare `socket.socket()` (protocol 0) every reply on a kept-alive connection, its
    headers and body written apart, waited ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadedServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        sock = loopback_listener()
        self.port = sock.getsockname()[1]
        # An idle connection stays open as long as the providers' front ends keep one, longer than the SDKs' pools
        # do (aiohttp 15 s, httpx 5 s): the client closes it first, as with the real services, so no request meets
        # a connection the server is closing (uvicorn's default is 5 s).
        config = uvicorn.Config(self.app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
