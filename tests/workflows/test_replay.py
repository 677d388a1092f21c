"""Replay committed histories with the current workflow code: a change that breaks running workflows fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.plugin import OrchestratorPlugin

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
HISTORY_TEXT = {path: path.read_text(encoding="utf-8") for path in HISTORIES}


def test_histories_are_committed() -> None:
    names = {"completed_with_feedback", "revised", "cancelled", "started_bare", "gate_round"}
    assert {p.stem for p in HISTORIES} >= {*names, "budget_raised"} | {f"{name}_before_lint_gate" for name in names}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])  # the worker's converter and workflow
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_the_lint_gate_patch_is_what_keeps_a_task_from_before_it_replaying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task recorded before the quality gate, whose code failed pylint, replays against the gated code only
    because `workflow.patched("lint-gate")` is False for it: forced True, the gate asks for a fix round the history
    never had, and the replay fails. (The patch lifecycle of "Changing the workflow" in the README, shown working.)"""
    path = next(p for p in HISTORIES if p.stem == "gate_round_before_lint_gate")
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    failure = (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure
    assert failure is not None and "nondetermin" in str(failure).lower(), failure
