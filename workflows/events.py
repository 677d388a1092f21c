"""The task's event log: progress events with increasing ids, kept in a bounded ring.

The `events` query pages through it and `TaskState.logs` is derived from it; the gateway streams the same events
from the workflow stream they are also published on (`journal`), where an event's id is its offset plus one.
Sandbox-safe and clock-free: the workflow passes the time in, so unit tests drive it without a server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from workflows.models import AgentRole, EventsPage, EventType, TaskEvent, TaskStatus

MAX_EVENTS = 500
MAX_STREAM_ITEMS = 2000  # the workflow stream retains this many items (events and llm_delta batches)
MAX_LOG_LINES = 200


def delta_event(at: str, role: AgentRole, step: int, attempt: int, text: str) -> TaskEvent:
    """An `llm_delta` event: text of the model call `step` of `role`, as published on the delta topic (id 0: a
    reader numbers it by its stream offset)."""
    data = {"role": role.value, "step": step, "attempt": attempt, "text": text}
    return TaskEvent(id=0, at=at, type=EventType.LLM_DELTA, message="", agent=role, data=data)


class EventLog:
    def __init__(self, events: Iterable[TaskEvent] = (), next_id: int = 1) -> None:
        self._events: deque[TaskEvent] = deque(events, maxlen=MAX_EVENTS)
        self.next_id = next_id

    def emit(
        self,
        at: str,
        type: EventType,
        message: str,
        agent: AgentRole | None = None,
        data: dict[str, Any] | None = None,
    ) -> TaskEvent:
        event = TaskEvent(id=self.next_id, at=at, type=type, message=message, agent=agent, data=data or {})
        self.next_id += 1
        self._events.append(event)
        return event

    @property
    def last_id(self) -> int:
        return self.next_id - 1

    def recent(self) -> list[TaskEvent]:
        return list(self._events)

    def page(self, after: int, task_status: TaskStatus) -> EventsPage:
        """The events with an id above `after` (those still in the ring: a reader that fell behind sees a gap)."""
        return EventsPage(
            events=[e for e in self._events if e.id > after], task_status=task_status, last_id=self.last_id
        )

    def log_lines(self) -> list[str]:
        """`TaskState.logs`: the recent events' messages, oldest first."""
        events = list(self._events)[-MAX_LOG_LINES:]
        return [f"{e.at} {e.message}" for e in events]
