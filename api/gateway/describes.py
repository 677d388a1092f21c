"""One describe for the requests that ask about one task together (`app.state.describes`).

Every request on a task (a stream, a status read, feedback, a cancel) describes it first, to check its owner. Requests
for one task that arrive while its describe is on its way share it: 50 clients of a task connecting together make
one describe, not 50. Nothing is kept once the describe has answered, so no request reads a state older than one
asked for while it was already waiting; and a NOT_FOUND from a describe sent before a request came is asked again
for that request (the task may have been started since). Each request still checks the owner itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

Described = asyncio.Future[WorkflowExecutionDescription]


class Describes:
    """The describes in flight, by session id."""

    def __init__(self) -> None:
        self._flying: dict[str, Described] = {}
        self.waiting: Counter[str] = Counter()  # the requests waiting for a task's describe

    async def describe(self, client: Client, session_id: str) -> WorkflowExecutionDescription:
        """The task's description: from the describe in flight for it, when there is one."""
        joined = self._flying.get(session_id)
        if joined is not None:
            try:
                return await self._wait(session_id, joined)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        own = asyncio.ensure_future(client.get_workflow_handle(session_id).describe())
        self._flying[session_id] = own
        own.add_done_callback(functools.partial(self._landed, session_id))
        return await self._wait(session_id, own)

    async def _wait(self, session_id: str, described: Described) -> WorkflowExecutionDescription:
        self.waiting[session_id] += 1
        try:
            return await asyncio.shield(described)  # a request that goes away leaves it to the others
        finally:
            self.waiting[session_id] -= 1
            if not self.waiting[session_id]:
                del self.waiting[session_id]

    def _landed(self, session_id: str, described: Described) -> None:
        if self._flying.get(session_id) is described:
            del self._flying[session_id]
        if not described.cancelled():
            described.exception()  # read here: every request that waited for it may have gone
