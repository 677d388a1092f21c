"""Run one command under a wall-time limit and an output cap, and leave nothing of it behind.

The command (bubblewrap) starts in a session of its own; stopping it is SIGKILL to that session. bubblewrap's
process inside is the pid namespace's init and dies with it (`--die-with-parent`), and with it every process
of the run, however it forked. stdout and stderr share one pipe, read as it comes: the first and the last
`keep` bytes are kept, the rest is counted; past `hard_cap` bytes the run is stopped, so no output fills memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HEARTBEAT_SECONDS = 5.0
_CHUNK = 1 << 16
_DRAIN_SECONDS = 60.0


@dataclass
class Capture:
    """The head and the tail of a stream, and how many bytes fell between them."""

    keep: int  # bytes of head, and of tail
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        del self.tail[: max(0, len(self.tail) - self.keep)]

    @property
    def cut(self) -> int:
        return self.total - len(self.head) - len(self.tail)


@dataclass(frozen=True)
class Finished:
    exit_code: int | None  # None when the run was stopped here
    stopped_by: str | None  # "wall time" or "output": this side stopped it
    capture: Capture
    duration_ms: int


async def run_bounded(
    argv: Sequence[str],
    *,
    wall_seconds: float,
    keep: int,
    hard_cap: int,
    pass_fds: Sequence[int] = (),
    heartbeat: Callable[[], None] = lambda: None,
) -> Finished:
    """Run `argv` with an empty environment but PATH; on cancellation the run is killed before this returns."""
    started = time.monotonic()
    read_end, write_end = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    stopped_by: list[str] = []

    def stop(reason: str) -> None:
        if not stopped_by:
            stopped_by.append(reason)
        _kill(proc.pid)

    capture = Capture(keep)
    stream, transport = await _read_pipe(read_end)
    reader = asyncio.create_task(_pump(stream, capture, hard_cap, stop))
    waiter = asyncio.create_task(proc.wait())
    try:
        deadline = started + wall_seconds
        while not (reader.done() and waiter.done()):
            left = deadline - time.monotonic()
            if left <= 0:
                stop("wall time")
                break
            pending = {t for t in (reader, waiter) if not t.done()}
            await asyncio.wait(pending, timeout=min(left, HEARTBEAT_SECONDS), return_when=asyncio.FIRST_COMPLETED)
            heartbeat()
    finally:
        if not waiter.done():
            _kill(proc.pid)
        await asyncio.shield(waiter)
        # Every writer was in the killed session or namespace, so the pipe ends; a minute's grace, then close.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), timeout=_DRAIN_SECONDS)
        reader.cancel()
        transport.close()
    reason = stopped_by[0] if stopped_by else None
    exit_code = None if reason else proc.returncode
    return Finished(exit_code, reason, capture, int((time.monotonic() - started) * 1000))


async def _read_pipe(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=_CHUNK, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return stream, transport


async def _pump(stream: asyncio.StreamReader, capture: Capture, hard_cap: int, stop: Callable[[str], None]) -> None:
    """Read to the end; past `hard_cap` bytes the run is stopped and the rest only counted."""
    while chunk := await stream.read(_CHUNK):
        if capture.total > hard_cap:
            capture.total += len(chunk)
            continue
        capture.add(chunk)
        if capture.total > hard_cap:
            stop("output")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
