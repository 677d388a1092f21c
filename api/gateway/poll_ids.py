"""One in-flight stream poll per task and position, however often watchers come and go.

A watcher's subscription is a long-poll update (`__temporal_workflow_stream_poll`) that the workflow answers only
when something is published. A client that leaves cannot take its update back: it stays in flight on the server
until the task publishes again. With a fresh update id per poll, a task that publishes nothing for a while (waiting
for a budget raise, an approval, feedback) collected one abandoned poll per watcher that came and went, and after
ten the server refused every update of that task, `raise_budget` and `approve_tool` included ("limit on number of
concurrent in-flight updates has been reached").

The update id names what the poll asks for (its topics and position), so the server, which deduplicates updates by
id within a run, attaches a new poll for the same position to the one already waiting instead of adding another.
A poll at a position that was answered before gets that answer again: the items from that position, which is what
it asked for.
"""

from __future__ import annotations

from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowUpdateInput, WorkflowUpdateHandle
from temporalio.contrib.workflow_streams import PollInput

POLL_UPDATE = "__temporal_workflow_stream_poll"  # the stream's long-poll update (WorkflowStream registers it)


def poll_update_id(poll: PollInput) -> str:
    return f"stream-poll:{poll.from_offset}:{','.join(sorted(poll.topics))}"


class _Outbound(OutboundInterceptor):
    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle:
        if input.update == POLL_UPDATE and input.update_id is None and len(input.args) == 1:
            (poll,) = input.args
            if isinstance(poll, PollInput):
                input.update_id = poll_update_id(poll)
        return await super().start_workflow_update(input)


class PollIds(Interceptor):
    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next)


def with_poll_ids(client: Client) -> Client:
    """The same connection, its stream polls named by position (see the module's docstring)."""
    config = client.config()
    if not any(isinstance(interceptor, PollIds) for interceptor in config["interceptors"]):
        config["interceptors"] = [*config["interceptors"], PollIds()]
    return Client(**config)
