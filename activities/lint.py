"""The `lint` activity: pylint on draft code, in a child process bounded in time and memory.

The code is written to a private temporary directory and only analysed statically; it is never imported or
executed. pylint runs with no rc file from the project, so the agents see the same rules everywhere.

By default the activity uses a warm pool of pylint processes (`activities.lint_pool`: imports paid once, same
isolation and bounds); `LINT_POOL_SIZE=0` selects the cold path, a fresh `python -m pylint` per call, which is
also the fallback when the pool cannot start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.config import WorkerSettings
from activities.lint_pool import POOL_PYLINT_ARGS, LintPool, LintPoolError
from activities.metrics import instruments
from workflows.models import LINT_ACTIVITY, LintMessage, LintRequest, LintResult

logger = logging.getLogger(__name__)

PYLINT_ARGS = ("--output-format=json2", *POOL_PYLINT_ARGS)  # the pool passes a JSON2 reporter object instead


def _memory_limiter(limit_mb: int) -> Callable[[], None]:
    def apply() -> None:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def parse_pylint_json(stdout: str) -> LintResult:
    """Turn pylint's `json2` report into a LintResult (raises ValueError when it is not such a report)."""
    report = json.loads(stdout)
    messages = [
        LintMessage(
            line=m.get("line") or 0,
            column=m.get("column") or 0,
            symbol=m.get("symbol", ""),
            message_id=m.get("messageId", ""),
            type=m.get("type", ""),
            message=m.get("message", ""),
        )
        for m in report["messages"]
    ]
    score = report.get("statistics", {}).get("score")
    return LintResult(score=round(float(score), 2) if score is not None else None, messages=messages)


class LintActivities:
    def __init__(self, settings: WorkerSettings, pool_size: int | None = None) -> None:
        self._timeout = settings.lint_timeout_seconds
        self._memory_mb = settings.lint_memory_mb
        size = settings.lint_pool_size if pool_size is None else pool_size
        self._pool = LintPool(size, self._memory_mb, self._timeout) if size > 0 else None

    @property
    def pool(self) -> LintPool | None:
        return self._pool

    async def start(self) -> None:
        """Pre-start the warm pool (otherwise the first call starts it); falls back to the cold path on failure."""
        if self._pool is None:
            return
        try:
            await self._pool.start()
        except (LintPoolError, OSError) as exc:
            logger.warning("lint pool could not start (%s); using a cold pylint subprocess per call", exc)
            await self._pool.close()
            self._pool = None

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @activity.defn(name=LINT_ACTIVITY)
    async def lint(self, request: LintRequest) -> LintResult:
        filename = Path(request.filename).name
        if not filename.endswith(".py") or not filename.removesuffix(".py").isidentifier():
            filename = "draft.py"
        await self.start()
        if self._pool is None and activity.info().is_local:
            # A cold pylint (2-3 s, more under load) is no short step: the workflow runs it as a regular activity.
            raise ApplicationError("no warm lint pool in this worker", type="LintNotLocal", non_retryable=True)
        if self._pool is not None:
            result = await self._lint_warm(request.code, filename)
        else:
            result = await self._lint_cold(request.code, filename)
        if result.error is None:
            activity.logger.info("lint: score %s, %d message(s)", result.score, len(result.messages))
        if result.score is not None:
            instruments().lint_score.record(float(result.score))
        return result

    async def _lint_warm(self, code: str, filename: str) -> LintResult:
        assert self._pool is not None
        try:
            report = await self._pool.lint(code, filename)
        except LintPoolError as exc:
            logger.warning("pylint produced no report: %s", exc)
            return LintResult(error=str(exc)[:500])
        try:
            return parse_pylint_json(report)
        except (ValueError, KeyError, TypeError):
            return LintResult(error="pylint failed: no report")

    async def _lint_cold(self, code: str, filename: str) -> LintResult:
        with tempfile.TemporaryDirectory(prefix="lint-") as workdir:
            await asyncio.to_thread(Path(workdir, filename).write_text, code, "utf-8", "replace")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pylint",
                *PYLINT_ARGS,
                filename,
                cwd=workdir,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": os.environ.get("PATH", ""), "HOME": workdir, "PYTHONDONTWRITEBYTECODE": "1"},
                preexec_fn=_memory_limiter(self._memory_mb),
            )
            try:
                stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=self._timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return LintResult(error=f"pylint timed out after {self._timeout:g}s")
        try:
            return parse_pylint_json(stdout.decode("utf-8", "replace"))
        except (ValueError, KeyError, TypeError):
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            reason = " / ".join(tail) or f"exit code {proc.returncode}"
            logger.warning("pylint produced no report: %s", reason)
            return LintResult(error=f"pylint failed: {reason}"[:500])
