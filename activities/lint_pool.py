"""A warm pylint: a few pre-started child processes that have already imported pylint.

A cold `python -m pylint` pays ~1 s of interpreter start and imports for every call. Here each child imports
pylint once and then lints one module per request, still isolated from the worker:

* the code is written to a private temporary directory and only analysed statically (pylint/astroid parse it;
  nothing imports or executes it);
* every child runs under an RLIMIT_AS cap: `memory_mb` on top of what the warm child holds after importing
  pylint and linting one warm-up module (the cold path caps the whole interpreter at `memory_mb`);
* every call has a timeout: a child that does not answer in time is killed and replaced, and the call returns
  a clean error; a child that died (crash, OOM kill) is replaced the same way;
* a child is recycled after `max_calls_per_child` calls, so caches cannot grow without bound.

The parent talks to each child over a socket pair (a `multiprocessing` Connection) from a dedicated thread pool,
so the event loop never blocks. Each child is a fresh `python -m activities.lint_pool` process: forking a process
that runs the Temporal core (threads, a tokio runtime) is not safe, and multiprocessing's `spawn` would re-import
the worker's main module (temporalio, openai, anthropic, ...) in every child.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# pylint's options in the pool and, with --output-format=json2, on the cold path (activities.lint).
POOL_PYLINT_ARGS = ("--persistent=n", "--score=y", "--rcfile=/dev/null", "--jobs=1")
STARTUP_TIMEOUT = 60.0
_WARM_UP_CODE = (
    '"""Warm-up."""\n\nimport json\nimport re\nfrom dataclasses import dataclass\nfrom datetime import timedelta\n'
    'from typing import Any\n\n\n@dataclass\nclass Item:\n    """An item."""\n\n    name: str\n\n\n'
    'def dump(item: Item, extra: Any = None) -> str:\n    """Dump."""\n'
    "    return json.dumps([item.name, extra, re.escape(item.name), timedelta(1).days])\n"
)
DEFAULT_MAX_CALLS_PER_CHILD = 500


class LintPoolError(Exception):
    """The pool could not lint (timeout, dead child); the message is meant for the agent."""


@dataclass(frozen=True)
class _Request:
    code: str
    filename: str


# ------------------------------------------------------------------------------------------- child side


def _address_space_bytes() -> int:
    """This process's current virtual size (VmSize), 0 when it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _child_main(conn: Connection, memory_mb: int) -> None:
    """Child process: import pylint once, then answer one request per message until the pipe closes."""
    try:
        linter = _Linter()
        os.environ["HOME"] = tempfile.gettempdir()
        os.environ.pop("PYLINTRC", None)
        # One throw-away run loads pylint's checkers and astroid's brains for the common standard library.
        with contextlib.suppress(Exception):
            linter.lint(_Request(_WARM_UP_CODE, "warm_up.py"))
        limit = _address_space_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except BaseException as exc:  # report why we cannot serve, then stop
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request: _Request = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:  # the request itself does not fit under the cap
            request = _Request("", "")
        try:
            if not request.filename:
                raise MemoryError
            reply: tuple[str, Any] = ("ok", linter.lint(request))
        except MemoryError:
            reply = ("error", "pylint ran out of memory")
        except BaseException as exc:
            reply = ("error", f"pylint crashed: {type(exc).__name__}: {exc}"[:500])
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


class _Linter:
    """pylint in this process. The first request builds a PyLinter (options, checkers: ~2/3 of a small file's
    cost); later requests reuse it with a fresh reporter. Per-file state (stats, inline pragmas) is reset by
    pylint itself on every `check`; tests compare the results with the cold path's on a sequence of modules."""

    def __init__(self) -> None:
        from astroid import MANAGER
        from pylint.lint import Run
        from pylint.reporters.json_reporter import JSON2Reporter

        self._manager, self._run, self._reporter = MANAGER, Run, JSON2Reporter
        self._linter: Any = None

    def lint(self, request: _Request) -> str:
        with tempfile.TemporaryDirectory(prefix="lint-") as workdir:
            Path(workdir, request.filename).write_text(request.code, "utf-8", "replace")
            out = io.StringIO()
            os.chdir(workdir)
            try:
                if self._linter is None:
                    args = [*POOL_PYLINT_ARGS, request.filename]
                    self._linter = self._run(args, reporter=self._reporter(output=out), exit=False).linter
                else:
                    self._linter.set_reporter(self._reporter(output=out))
                    self._linter.check([request.filename])
                    self._linter.generate_reports()
            except BaseException:
                self._linter = None  # never reuse a linter that failed half-way
                raise
            finally:
                os.chdir("/")
                # Forget the modules parsed from this directory; keep the cached standard library.
                for name, module in list(self._manager.astroid_cache.items()):
                    if (getattr(module, "file", None) or "").startswith(workdir):
                        del self._manager.astroid_cache[name]
        return out.getvalue()


# ------------------------------------------------------------------------------------------ parent side


class _Child:
    def __init__(self, memory_mb: int) -> None:
        parent_end, child_end = socket.socketpair()
        with child_end:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child_end.fileno()), str(memory_mb)],
                pass_fds=[child_end.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        self.conn = Connection(parent_end.detach())
        self.ready = False
        self.broken = False
        self.calls = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            raise LintPoolError(f"pylint worker did not start within {timeout:g}s")
        try:
            status, detail = self.conn.recv()
        except (EOFError, OSError):
            status, detail = "failed", f"exit code {self.process.poll()}"
        if status != "ready":
            raise LintPoolError(f"pylint worker could not start: {detail}")
        self.ready = True

    def roundtrip(self, request: _Request, timeout: float) -> tuple[str, Any]:
        """Blocking: send one request and wait for its reply (run from the pool's thread executor)."""
        self.wait_ready(STARTUP_TIMEOUT)
        self.calls += 1
        self.conn.send(request)
        if not self.conn.poll(timeout):
            raise TimeoutError
        result: tuple[str, Any] = self.conn.recv()
        return result

    def kill_now(self) -> None:
        """Non-blocking: SIGKILL the child (reaped later by `kill`)."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


class LintPool:
    """`size` warm pylint processes; `await pool.lint(code, filename)` returns pylint's JSON2 report text."""

    def __init__(
        self,
        size: int,
        memory_mb: int,
        timeout: float,
        max_calls_per_child: int = DEFAULT_MAX_CALLS_PER_CHILD,
    ) -> None:
        if size < 1:
            raise ValueError("a lint pool needs at least one process")
        self.size = size
        self._memory_mb = memory_mb
        self._timeout = timeout
        self._max_calls = max_calls_per_child
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="lint-pool")
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: set[_Child] = set()
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.replaced = 0  # children killed or found dead and replaced (for tests and metrics)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._children if c.pid is not None]

    async def start(self) -> None:
        """Start the children and wait until each has imported pylint (idempotent)."""
        if self._idle is not None:
            return
        if self._closed:
            raise LintPoolError("the lint pool is closed")
        async with self._start_lock:
            if self._idle is not None:
                return
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            spawns = [loop.run_in_executor(self._threads, self._spawn) for _ in range(self.size)]
            children = await asyncio.gather(*spawns, return_exceptions=True)
            failures = [c for c in children if isinstance(c, BaseException)]
            if failures:
                for child in children:
                    if isinstance(child, _Child):
                        self._discard(child)
                raise LintPoolError(str(failures[0]))
            idle: asyncio.Queue[_Child] = asyncio.Queue()
            for child in children:
                assert isinstance(child, _Child)
                idle.put_nowait(child)
            self._idle = idle
        logger.info("lint pool: %d warm pylint process(es) ready in %.1fs", self.size, time.monotonic() - started)

    def _spawn(self) -> _Child:
        child = _Child(self._memory_mb)
        self._children.add(child)
        try:
            child.wait_ready(STARTUP_TIMEOUT)
        except LintPoolError:
            self._discard(child)
            raise
        return child

    def _discard(self, child: _Child) -> None:
        self._children.discard(child)
        child.kill()

    def _replace(self, child: _Child) -> _Child:
        """Blocking: kill `child` and start a fresh one in its place."""
        self._discard(child)
        self.replaced += 1
        return self._spawn()

    async def lint(self, code: str, filename: str) -> str:
        """Lint one module; returns the JSON2 report. Raises LintPoolError (timeout, crash) with a clean message."""
        await self.start()
        assert self._idle is not None
        loop = asyncio.get_running_loop()
        child = await self._idle.get()
        try:
            for attempt in (1, 2):
                if child.broken or not child.alive() or child.calls >= self._max_calls:
                    child = await loop.run_in_executor(self._threads, self._replace, child)
                try:
                    status, detail = await loop.run_in_executor(
                        self._threads, child.roundtrip, _Request(code, filename), self._timeout
                    )
                except TimeoutError:
                    child.broken = True
                    raise LintPoolError(f"pylint timed out after {self._timeout:g}s") from None
                except (EOFError, OSError) as exc:
                    # Died before or while linting; it may have been dying already, so one fresh child retries.
                    logger.warning("lint pool: pylint process %s died (%r); replacing it", child.pid, exc)
                    child.broken = True
                    if attempt == 1:
                        continue
                    raise LintPoolError("pylint process died while linting (out of memory or crashed)") from None
                except asyncio.CancelledError:
                    child.broken = True  # its pipe is mid-request: never reuse it
                    raise
                if status != "ok":
                    raise LintPoolError(str(detail))
                return str(detail)
            raise AssertionError("unreachable")
        finally:
            if child.broken:
                child.kill_now()
                task = asyncio.create_task(self._refill(child))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            else:
                self._idle.put_nowait(child)

    async def _refill(self, broken: _Child) -> None:
        """Replace a broken child in the background; on failure the next caller retries the replacement."""
        assert self._idle is not None
        try:
            fresh = await asyncio.get_running_loop().run_in_executor(self._threads, self._replace, broken)
        except Exception as exc:
            logger.warning("lint pool: could not start a replacement pylint process: %s", exc)
            fresh = broken
        if self._closed:
            fresh.kill()
        else:
            self._idle.put_nowait(fresh)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        for child in list(self._children):
            self._discard(child)
        self._threads.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":  # a pool child: python -m activities.lint_pool FD MEMORY_MB
    _child_main(Connection(int(sys.argv[1])), int(sys.argv[2]))
