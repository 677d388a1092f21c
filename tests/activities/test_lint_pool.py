"""The warm lint pool gives the cold path's results, stays bounded, and never executes the code it lints."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.lint import LintActivities
from activities.lint_pool import LintPool, LintPoolError
from bench.lint_sample import SAMPLE_MODULE
from workflows.models import LintRequest, LintResult

CLEAN = (
    '"""Arithmetic helpers."""\n\n\n'
    'def add(first: int, second: int) -> int:\n    """Return the sum."""\n    return first + second\n'
)
MESSY = "import os, sys\ndef add(a,b):\n  x = 1\n  return a+b\n"
SYNTAX_ERROR = "def broken(:\n    return 1\n"
DISABLED = "# pylint: disable=all\nimport os\n"  # must not leak into the next module linted by a reused linter


def _settings(timeout: float = 30.0) -> WorkerSettings:
    return WorkerSettings(_env_file=None, lint_timeout_seconds=timeout)


async def _run(acts: LintActivities, code: str, filename: str = "draft.py") -> LintResult:
    result: LintResult = await ActivityEnvironment().run(acts.lint, LintRequest(code=code, filename=filename))
    return result


@pytest.fixture(scope="module")
async def warm() -> AsyncIterator[LintActivities]:
    acts = LintActivities(_settings(), pool_size=1)
    await acts.start()
    yield acts
    await acts.aclose()


@pytest.mark.parametrize(
    "code",
    [CLEAN, DISABLED, MESSY, SYNTAX_ERROR, SAMPLE_MODULE, MESSY],
    ids=["clean", "disabled", "messy", "syntax", "sample", "messy-again"],
)
async def test_pool_matches_cold_path(warm: LintActivities, code: str) -> None:
    cold = await _run(LintActivities(_settings(), pool_size=0), code)
    hot = await _run(warm, code)
    assert cold.error is None
    assert hot == cold


async def test_syntax_error_is_a_message_not_a_failure(warm: LintActivities) -> None:
    result = await _run(warm, SYNTAX_ERROR)
    assert result.error is None
    assert [m.symbol for m in result.messages] == ["syntax-error"]


async def test_repeated_module_name_is_not_served_from_a_stale_cache(warm: LintActivities) -> None:
    first = await _run(warm, MESSY, "same.py")
    second = await _run(warm, CLEAN, "same.py")
    assert first.messages and not second.messages
    assert second.score == 10.0


async def test_code_is_never_executed(warm: LintActivities, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    code = (
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
        f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n"
    )
    result = await _run(warm, code)
    assert result.error is None
    assert not marker.exists()
    assert (await _run(warm, CLEAN)).score == 10.0  # the child survived a module that calls SystemExit


async def test_timeout_is_a_clean_error_and_the_pool_recovers() -> None:
    acts = LintActivities(_settings(timeout=0.01), pool_size=1)
    try:
        await acts.start()
        pool = acts.pool
        assert pool is not None
        big = SAMPLE_MODULE * 20
        result = await _run(acts, big)
        assert result.error == "pylint timed out after 0.01s"
        assert result.messages == []
        pool._timeout = 30.0  # the replacement child serves the next call normally
        assert (await _run(acts, CLEAN)).score == 10.0
        assert pool.replaced == 1
    finally:
        await acts.aclose()


async def test_a_killed_child_is_replaced() -> None:
    pool = LintPool(size=2, memory_mb=1024, timeout=30.0)
    try:
        await pool.start()
        before = set(pool.pids)
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        reports = await asyncio.gather(pool.lint(CLEAN, "a.py"), pool.lint(MESSY, "b.py"))
        assert all('"messages"' in r for r in reports)
        assert pool.replaced >= 2
        assert not before & set(pool.pids)
    finally:
        await pool.close()


async def test_memory_cap_is_a_clean_error() -> None:
    pool = LintPool(size=1, memory_mb=1, timeout=30.0)  # 1 MB above the warm child's footprint
    try:
        await pool.start()
        with pytest.raises(LintPoolError):
            await pool.lint(SAMPLE_MODULE * 400, "big.py")
    finally:
        await pool.close()


async def test_cold_path_still_works_when_the_pool_is_off() -> None:
    acts = LintActivities(_settings(), pool_size=0)
    assert acts.pool is None
    assert (await _run(acts, CLEAN)).score == 10.0


async def test_without_a_warm_pool_a_local_try_is_refused_so_the_workflow_lints_as_a_regular_activity() -> None:
    """The workflow tries lint as a local activity first (`workflows.calls.LINT`); a cold pylint is no short step."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=True)
    with pytest.raises(ApplicationError) as refused:
        await env.run(LintActivities(_settings(), pool_size=0).lint, LintRequest(code=CLEAN))
    assert refused.value.type == "LintNotLocal" and refused.value.non_retryable
    assert (await _run(LintActivities(_settings(), pool_size=0), CLEAN)).error is None  # as a regular activity


async def test_a_local_try_lints_on_the_warm_pool(warm: LintActivities) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=True)
    result: LintResult = await env.run(warm.lint, LintRequest(code=CLEAN))
    assert result.error is None and result.score == 10.0
