"""What the workflow sandbox executes again for every run of a task: the workflow's module and no other of ours."""

from __future__ import annotations

from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.plugin import OrchestratorPlugin

HISTORY = Path(__file__).parent / "histories" / "completed_with_feedback.json"


async def test_a_run_executes_only_the_workflow_module_the_others_are_passed_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`workflows.*` modules the workflow imports in `imports_passed_through()` are the worker's own: executed
    again in each run's sandbox they would cost their import (and, without bytecode, their compile) every run."""
    history = WorkflowHistory.from_json(HISTORY.stem, HISTORY.read_text(encoding="utf-8"))
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    await replayer.replay_workflow(history)  # the worker's first run imports everything once
    executed: list[str] = []
    exec_module = SourceFileLoader.exec_module

    def spy(loader: SourceFileLoader, module: ModuleType) -> None:
        executed.append(module.__name__)
        exec_module(loader, module)

    monkeypatch.setattr(SourceFileLoader, "exec_module", spy)
    await replayer.replay_workflow(history)
    assert "workflows.coding_task" in executed  # the sandbox does run it afresh: the spy sees what it executes
    assert set(executed) <= {"workflows", "workflows.coding_task"}, executed
