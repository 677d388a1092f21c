"""What a task records as it goes: progress events, warnings and its status, and what Temporal shows of them
(the search attributes and the Web UI's details line), kept in step.

Runs inside the workflow (it reads the workflow clock and sends upserts); the pieces it uses (`events`,
`visibility`) are unit-tested without a server.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.events import EventLog
from workflows.models import AgentRole, EventType, TaskState, TaskStatus
from workflows.visibility import SearchAttributeSync, details_line


class Journal:
    def __init__(self, state: TaskState, log: EventLog, visibility: SearchAttributeSync) -> None:
        self.state = state
        self.log = log
        self.visibility = visibility

    def event(
        self, type: EventType, message: str, agent: AgentRole | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.state.updated_at = workflow.now().isoformat()
        self.log.emit(self.state.updated_at, type, message, agent, data)

    def warn(self, message: str, agent: AgentRole | None = None) -> None:
        """A warning is recorded once, however often it happens."""
        if message not in self.state.warnings:
            self.state.warnings.append(message)
            self.event(EventType.WARNING, message, agent)

    def set_status(self, status: TaskStatus, message: str) -> None:
        self.state.task_status = status
        self.details()
        self.event(EventType.STATUS, message, data={"task_status": status.value})

    def details(self, doing: str | None = None) -> None:
        workflow.set_current_details(details_line(self.state, doing))

    def sync(self) -> None:
        """Send the search attributes that changed; called before the workflow waits (one upsert per task)."""
        if updates := self.visibility.updates(self.state):
            workflow.upsert_search_attributes(updates)
