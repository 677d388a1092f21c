"""Replay committed histories with the current workflow code: a change that breaks running workflows fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.plugin import OrchestratorPlugin

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
HISTORY_TEXT = {path: path.read_text(encoding="utf-8") for path in HISTORIES}


def test_histories_are_committed() -> None:
    assert {p.stem for p in HISTORIES} >= {"completed_with_feedback", "revised", "cancelled", "started_bare"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])  # the worker's converter and workflow
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
