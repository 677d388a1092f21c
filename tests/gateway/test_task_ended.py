"""A budget raise or a tool call's approval that reaches a task which ended after the gateway looked (the workflow's
validator raises `TaskEnded`) answers 409 saying the task ended, by the error's type; any other refusal of the update
(a state conflict too) is a 409 with its own reason."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from api.gateway.deps import OwnedTask, get_owned_task
from tests.gateway.support import ALICE, asgi_client, make_app
from workflows.models import TaskEnded, TaskStatus


class RefusingHandle:
    """A task handle whose updates are refused with `cause` (as the client hands it over)."""

    id = "ended-between"

    def __init__(self, cause: ApplicationError) -> None:
        self.cause = cause

    async def execute_update(self, *args: Any, **kwargs: Any) -> None:
        raise WorkflowUpdateFailedError(self.cause)


ROUTES = {  # the two routes that send an update, each with a body it takes and how it words a refusal
    "budget": ("/budget/ended-between", {"budget_usd": 5}, "budget not raised: "),
    "approve": ("/approve/ended-between", {"call_id": "call-1", "approved": True}, ""),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize(
    ("cause", "said"),
    [
        # as it arrives from the workflow: an ApplicationError of type TaskEnded, not the class itself
        (ApplicationError("the task has ended (completed)", type=TaskEnded.__name__), "the task has ended; "),
        (TaskEnded(TaskStatus.CANCELLED), "the task has ended; "),
        # the same words under another type are not the typed error: the route's refusal, with the reason
        (ApplicationError("the task has ended (not really)", type="ValueError"), "{}the task has ended (not really)"),
    ],
)
async def test_an_update_refused_because_the_task_ended_is_a_409_by_type(
    client: Client, task_queue: str, route: str, cause: ApplicationError, said: str
) -> None:
    path, body, refused = ROUTES[route]
    app = make_app(task_queue, client)
    attributes = TypedSearchAttributes.empty  # a task without them: the approval route asks the workflow
    running = SimpleNamespace(status=WorkflowExecutionStatus.RUNNING, typed_search_attributes=attributes)
    app.dependency_overrides[get_owned_task] = lambda: OwnedTask("ended-between", RefusingHandle(cause), running)  # type: ignore[arg-type]
    async with asgi_client(app) as http:
        reply = await http.post(path, json=body, headers=ALICE)
    assert reply.status_code == 409 and reply.json()["detail"].startswith(said.format(refused)), reply.text
