"""Replay committed histories with the current workflow code: a change that breaks running workflows fails here."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator import payload_store
from orchestrator.plugin import OrchestratorPlugin

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
HISTORY_TEXT = {path: path.read_text(encoding="utf-8") for path in HISTORIES}


def test_histories_are_committed() -> None:
    names = {"completed_with_feedback", "revised", "cancelled", "started_bare", "gate_round"}
    stored = {
        "budget_raised",
        "stored_context",
        "test_gate_round",
        "early_feedback",
        "early_feedback_before_feedback_when_awaited",
        "completed_with_feedback_before_local_steps",
        "watched",
        "watched_before_watch_memo",
    }
    assert {p.stem for p in HISTORIES} >= {*names, *stored} | {f"{name}_before_lint_gate" for name in names}
    assert all(p.with_suffix(".sqlite").exists() for p in HISTORIES if p.stem.startswith("stored_"))


def use_recorded_store(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """A history recorded with the payload store on reads its values from the `.sqlite` beside it (a copy)."""
    recorded = path.with_suffix(".sqlite")
    if not recorded.exists():
        monkeypatch.delenv(payload_store.STORE_ENV, raising=False)
        return None
    store = tmp_path / recorded.name
    shutil.copyfile(recorded, store)
    monkeypatch.setenv(payload_store.STORE_ENV, str(store))
    return store


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_recorded_store(path, tmp_path, monkeypatch)
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])  # the worker's converter and workflow
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize(
    "stem",
    [
        # Recorded before the quality gate, with code that failed pylint: forced True, the gate asks for a fix
        # round the history never had.
        "gate_round_before_lint_gate",
        # Recorded before feedback was refused outside `awaiting_feedback`, with a rating sent while the code agent
        # ran, applied as a revision: forced True, the rating is ignored and no revision runs.
        "early_feedback_before_feedback_when_awaited",
        # Recorded before lint and knowledge search ran as local activities: forced True, they are local-activity
        # markers where the history has their scheduled activities.
        "completed_with_feedback_before_local_steps",
        # Recorded before the watch lease, with a reader polling the stream: forced True, each renewal of the lease
        # upserts a memo the history never had.
        "watched_before_watch_memo",
    ],
)
async def test_the_patch_is_what_keeps_a_task_from_before_it_replaying(
    stem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task recorded before a change replays against the changed code only because `workflow.patched(...)` is
    False for it: forced True, the replay fails. (The patch lifecycle of docs/operations.md, shown
    working.)"""
    path = next(p for p in HISTORIES if p.stem == stem)
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    failure = (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure
    assert failure is not None and "nondetermin" in str(failure).lower(), failure


def test_the_stored_history_holds_references_not_the_context() -> None:
    text = HISTORY_TEXT[next(p for p in HISTORIES if p.stem == "stored_context")]
    assert "externalPayloads" in text
    assert "helper_7" not in text  # the code context is only in the store (plain JSON would show it)


async def test_a_value_missing_from_the_store_fails_the_replay_naming_the_task_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The start input cannot be read: the replay fails, with the store's error in the worker's log (on a
    server: the workflow task fails with it and is retried until the value is back, test_missing_values.py)."""
    path = next(p for p in HISTORIES if p.stem == "stored_context")
    store = use_recorded_store(path, tmp_path, monkeypatch)
    assert store is not None

    with sqlite3.connect(store) as db:
        (task,) = db.execute("SELECT DISTINCT task FROM chunks").fetchone()
        db.execute("DELETE FROM chunks")
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[], plugins=[OrchestratorPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
    logged = "\n".join(r.getMessage() + (repr(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert f"task {task!r}: stored value" in logged and "is missing" in logged, logged
