"""An HTTP server that answers every request with the same broken reply, written byte by byte on the socket.

What uvicorn cannot be made to send: a body cut short of its Content-Length, then the connection closed. Also
an HTML error page or a 200 whose JSON is not the API's shape. Counts the requests it answered.
"""

from __future__ import annotations

import asyncio
import threading

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>\n"
)
REPLIES = {
    # 200, JSON promised for 4096 bytes, 30 of them sent, then the connection is closed
    "cut-body": (200, "application/json", '{"id": "chatcmpl-1", "choices": [', 4096),
    "html-page": (502, "text/html", HTML_PAGE, None),
    "html-200": (200, "text/html", HTML_PAGE, None),
    "wrong-shape": (200, "application/json", '{"result": "ok", "data": [1, 2, 3]}', None),
}


class BrokenHttpServer:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.status, self.content_type, self.body, self.length = REPLIES[reply]
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.requests += 1
        body = self.body.encode()
        declared = self.length if self.length is not None else len(body)
        writer.write(
            f"HTTP/1.1 {self.status} X\r\nContent-Type: {self.content_type}\r\nContent-Length: {declared}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> BrokenHttpServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
