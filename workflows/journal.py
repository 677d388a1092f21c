"""What a task records as it goes: progress events, warnings and its status, and what Temporal shows of them
(the search attributes and the Web UI's details line), kept in step.

Runs inside the workflow (it reads the workflow clock and sends upserts); the pieces it uses (`events`,
`visibility`) are unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowTopicHandle

from workflows.events import MAX_STREAM_ITEMS, EventLog
from workflows.models import EVENTS_TOPIC, AgentRole, EventType, TaskEvent, TaskState, TaskStatus
from workflows.visibility import SearchAttributeSync, details_line


def stream_offset(stream: WorkflowStream) -> Callable[[], int]:
    """The stream's next offset (items published so far, by the workflow and by activities), read through the
    offset query the stream registers: the SDK has no other public reader of it inside the workflow."""
    handler = workflow.get_query_handler("__temporal_workflow_stream_offset")
    if handler is None:
        raise RuntimeError("the workflow stream is not registered")
    return lambda: int(handler())


class Journal:
    def __init__(
        self, state: TaskState, log: EventLog, visibility: SearchAttributeSync, stream: WorkflowStream
    ) -> None:
        self.state = state
        self.log = log
        self.visibility = visibility
        self.stream = stream
        self._topic: WorkflowTopicHandle[TaskEvent] = stream.topic(EVENTS_TOPIC, type=TaskEvent)
        self.stream_offset = stream_offset(stream)

    def event(
        self, type: EventType, message: str, agent: AgentRole | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Record the event in the ring (`events` query) and publish it on the stream (what watchers receive).

        Its id is the stream offset it lands on plus one, so ids stay one sequence with the `llm_delta` events
        activities publish on the same stream. Publishing issues no command: the stream lives in the workflow's
        memory and a replay rebuilds it, so no patch guards it (README: Changing the workflow)."""
        self.state.updated_at = workflow.now().isoformat()
        offset = self.stream_offset()
        self.log.next_id = offset + 1
        self._topic.publish(self.log.emit(self.state.updated_at, type, message, agent, data))
        if offset + 1 > MAX_STREAM_ITEMS:  # bounded memory and continue-as-new input; a late reader sees a gap
            self.stream.truncate(offset + 1 - MAX_STREAM_ITEMS)

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
