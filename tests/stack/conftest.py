"""Fixtures of the launcher tests: stacks started on free ports, all of them stopped by pid in the teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack.launcher import RunningStack


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., RunningStack]]:
    """`launch(**options)` starts a launcher (see `RunningStack.start`); whatever it started dies at the end."""
    started: list[RunningStack] = []

    def start(**options: Any) -> RunningStack:
        stack = RunningStack.start(tmp_path, **options)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.kill_everything()
