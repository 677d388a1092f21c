"""Whether anyone reads the task's `llm_delta` topic, so that model calls publish their text only then.

A reader of the stream (the gateway's subscription of a watched task, any `WorkflowStreamClient.subscribe`) holds
a long-poll update on the workflow most of the time it reads. Each poll that asks for the delta topic (or for every
topic) is seen here, in the workflow task that already delivers it: while one is in flight, or for `WATCH_LEASE`
after the last one began, the task is watched. The lease goes out in the memo (`WATCHED_UNTIL_MEMO`, renewed when
less than half of it is left), where a model call that started unwatched reads it with `describe()`, a server read
that adds nothing to the history and wakes no workflow task (activities/deltas.py). Nothing to send and no new
handler: a task nobody watches costs nothing more than before.

Sandbox-safe (the workflow clock and commands only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStream

from workflows.models import DELTA_TOPIC, WATCHED_UNTIL_MEMO

POLL_UPDATE = "__temporal_workflow_stream_poll"  # the stream's long-poll (WorkflowStream registers it)
WATCH_LEASE = timedelta(seconds=30)  # how long a poll keeps the task watched after it began
# The memo upsert is a command: tasks recorded before it replay without it (README: Changing the workflow).
WATCH_MEMO_PATCH = "watch-memo"


class Watch:
    """Counts the stream's polls that read the delta topic, and keeps the lease they give in the memo."""

    def __init__(self, stream: WorkflowStream) -> None:
        poll = workflow.get_update_handler(POLL_UPDATE)
        if poll is None:
            raise RuntimeError("the workflow stream is not registered")
        self._poll: Callable[[PollInput], Awaitable[PollResult]] = poll
        self._polls = 0  # polls for the delta topic in flight
        self.until: datetime | None = None  # the lease's end, workflow time
        # WorkflowStream has no public reader of its poll validator (it refuses polls once pollers are detached)
        workflow.set_update_handler(POLL_UPDATE, self._on_poll, validator=stream._validate_poll)

    async def _on_poll(self, payload: PollInput) -> PollResult:
        if payload.topics and DELTA_TOPIC not in payload.topics:
            return await self._poll(payload)
        self._polls += 1
        self._renew()
        try:
            return await self._poll(payload)
        finally:
            self._polls -= 1

    def _renew(self) -> None:
        now = workflow.now()
        if self.until is not None and self.until - now > WATCH_LEASE / 2:
            return
        self.until = now + WATCH_LEASE
        if workflow.patched(WATCH_MEMO_PATCH):
            workflow.upsert_memo({WATCHED_UNTIL_MEMO: self.until.isoformat()})

    def watched(self) -> bool:
        """Someone reads the delta topic now (a poll in flight) or did within the lease."""
        return self._polls > 0 or (self.until is not None and workflow.now() < self.until)
