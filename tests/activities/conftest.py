"""The sandbox's fixtures: the real run_tests activity, and the checks every run must pass afterwards."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.sandbox import SandboxActivities
from workflows.models import RunTestsRequest, SandboxLimits, TestReport

PASSING_CODE = "def mul(a, b):\n    return a * b\n"
PASSING_TESTS = "from solution import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
FAST = SandboxLimits(wall_seconds=20, cpu_seconds=5)


def processes_mentioning(marker: str) -> list[str]:
    """Host processes whose command line holds `marker` (a run's unique tests file name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(f"{entry.name}: {cmdline[:200]!r}")
    return found


@dataclass
class Sandbox:
    """The activity as a worker runs it (ActivityEnvironment: heartbeats, cancellation), plus after-checks."""

    activities: SandboxActivities
    workdir: Path  # where the activity stages its files (tempfile.tempdir for the test)

    async def run(self, tests: str, code: str = PASSING_CODE, **fields: Any) -> TestReport:
        fields.setdefault("limits", FAST)
        tests_file = f"test_{uuid.uuid4().hex}.py"
        request = RunTestsRequest(code=code, tests=tests, tests_file=tests_file, **fields)
        report: TestReport = await ActivityEnvironment().run(self.activities.run_tests, request)
        assert processes_mentioning(tests_file) == [], "a process of the run outlived it"
        assert list(self.workdir.iterdir()) == [], "the run's staging directory is still there"
        return report

    async def serves(self) -> None:
        """The worker runs the next request normally."""
        report = await self.run(PASSING_TESTS)
        assert (report.outcome, report.passed, report.failed) == ("passed", 1, 0), report


def settings(**fields: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **fields)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    workdir = tmp_path / "staging"
    workdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(workdir))
    yield Sandbox(SandboxActivities(settings()), workdir)
