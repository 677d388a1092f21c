"""What a task records as it goes: progress events, warnings and its status, and what Temporal shows of them
(the search attributes and the Web UI's details line), kept in step.

Runs inside the workflow (it reads the workflow clock and sends upserts); the pieces it uses (`events`,
`visibility`) are unit-tested without a server.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.contrib.workflow_streams import PublishEntry, PublishInput, WorkflowStream, WorkflowTopicHandle

import orchestrator.live as live
from workflows.events import MAX_STREAM_ITEMS, EventLog, delta_event
from workflows.models import DELTA_TOPIC, EVENTS_TOPIC, AgentRole, EventType, TaskEvent, TaskState, TaskStatus
from workflows.visibility import SearchAttributeSync, details_line
from workflows.watch import Watch

PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"  # how activities publish to the stream (WorkflowStream's)


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
        self.calling: AgentRole | None = None  # the agent whose model call is in flight (Steps.llm sets it)
        self.call_deltas = 0  # llm_delta batches taken from that call (Steps.llm zeroes it)
        self.watch = Watch(stream)  # whether anyone reads the llm_delta topic (Steps.llm asks)
        self._stream_publish = workflow.get_signal_handler(PUBLISH_SIGNAL)
        workflow.set_signal_handler(PUBLISH_SIGNAL, self._publish)
        self._was_reset = False
        workflow.register_random_seed_callback(self._reset_seen)  # the SDK's only word of a reset
        info = workflow.info()
        self._live = live.publisher_for(info.namespace, info.task_queue)  # None: the worker has no live channel

    def _publish(self, batch: PublishInput) -> None:
        """An activity's `llm_delta` batch, taken only from the model call in flight. A reset re-applies the
        replaced run's signals to the new run, its calls' text among them, before the new run makes those calls
        again: that text, like any from a call that ended, never enters this run's stream."""
        self._start_after_reset()
        batch.items = [entry for entry in batch.items if self._from_call_in_flight(entry)]
        self.call_deltas += sum(1 for entry in batch.items if entry.topic == DELTA_TOPIC)
        if batch.items and self._stream_publish is not None:
            self._stream_publish(batch)

    def _from_call_in_flight(self, entry: PublishEntry) -> bool:
        if entry.topic != DELTA_TOPIC:
            return True
        payload = Payload.FromString(base64.b64decode(entry.data))  # the stream's wire form of an item
        delta = workflow.payload_converter().from_payload(payload, TaskEvent)
        return self.calling is not None and delta.data.get("role") == self.calling  # data.role: whose call

    def _reset_seen(self, _seed: int) -> None:
        """A reset gives the run a new random seed, at the reset point, on replay too. The clock cannot be read
        here: the next event starts the new run's ids."""
        self._was_reset = True

    def _start_after_reset(self) -> None:
        """After a reset, ids go on from the reset's time in milliseconds (about 1.7e12), above every id the
        replaced run gave (it gave fewer than one a millisecond), so no id is given twice and a reader resuming
        with one of the replaced run's ids skips nothing of the new run. The stream's retained items go."""
        if not self._was_reset:
            return
        self._was_reset = False
        offset = self.stream_offset()
        first = max(offset, int(workflow.now().timestamp() * 1000))
        self.stream.truncate(offset)
        self.stream._base_offset = first  # WorkflowStream has no public way to move its offsets on
        self.event(
            EventType.RESUMED, f"the task was reset: this run goes on from the reset point; ids from {first + 1}"
        )

    def event(
        self, type: EventType, message: str, agent: AgentRole | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Record the event in the ring (`events` query) and publish it on the stream (what watchers receive).

        Its id is the stream offset it lands on plus one, so ids stay one sequence with the `llm_delta` events
        activities publish on the same stream. Publishing issues no command: the stream lives in the workflow's
        memory and a replay rebuilds it, so no patch guards it (README: Changing the workflow)."""
        self._start_after_reset()
        self.state.updated_at = workflow.now().isoformat()
        offset = self.stream_offset()
        self.log.next_id = offset + 1
        event = self.log.emit(self.state.updated_at, type, message, agent, data)
        self._topic.publish(event)
        self._offer_live(EVENTS_TOPIC, offset, event)
        if offset + 1 > MAX_STREAM_ITEMS:  # bounded memory and continue-as-new input; a late reader sees a gap
            self.stream.truncate(offset + 1 - MAX_STREAM_ITEMS)

    def late_delta(self, role: AgentRole, step: int, text: str) -> None:
        """A call's whole text as one `llm_delta`, published by the workflow: for a call scheduled unwatched that
        a watcher came to after its last look (it published nothing). In the stream's memory, like `event`: no
        command."""
        self._start_after_reset()
        offset = self.stream_offset()
        event = delta_event(workflow.now().isoformat(), role, step, 1, text)
        self.stream.topic(DELTA_TOPIC, type=TaskEvent).publish(event)
        self._offer_live(DELTA_TOPIC, offset, event)

    def _offer_live(self, topic: str, offset: int, event: TaskEvent) -> None:
        """The item, to the worker's live channel as it is published (orchestrator/live.py). Not while history
        replays: those items were offered when they were first published, and a watcher who missed one reads it
        from the stream. Issues no command."""
        if self._live is not None and not workflow.unsafe.is_replaying():
            info = workflow.info()
            self._live.offer(live.LiveItem(info.namespace, info.workflow_id, topic, offset, event))

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
