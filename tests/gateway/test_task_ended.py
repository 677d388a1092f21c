"""A budget raise that reaches a task which ended after the gateway looked (the workflow's validator raises
`TaskEnded`) answers 409 saying the task ended, by the error's type; any other refusal of the update (a state
conflict too) is a 409 with its own reason."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.gateway.deps import OwnedTask, get_owned_task
from tests.gateway.support import ALICE, asgi_client, make_app
from workflows.models import TaskEnded, TaskStatus


class RefusingHandle:
    """A task handle whose `raise_budget` update is refused with `cause` (as the client hands it over)."""

    id = "ended-between"

    def __init__(self, cause: ApplicationError) -> None:
        self.cause = cause

    async def execute_update(self, *args: Any, **kwargs: Any) -> None:
        raise WorkflowUpdateFailedError(self.cause)


@pytest.mark.parametrize(
    ("cause", "code", "said"),
    [
        # as it arrives from the workflow: an ApplicationError of type TaskEnded, not the class itself
        (ApplicationError("the task has ended (completed)", type=TaskEnded.__name__), 409, "the task has ended"),
        (TaskEnded(TaskStatus.CANCELLED), 409, "the task has ended"),
        # the same words under another type are not the typed error
        (ApplicationError("the task has ended (not really)", type="ValueError"), 409, "budget not raised"),
    ],
)
async def test_an_update_refused_because_the_task_ended_is_a_409_by_type(
    client: Client, task_queue: str, cause: ApplicationError, code: int, said: str
) -> None:
    app = make_app(task_queue, client)
    running = SimpleNamespace(status=WorkflowExecutionStatus.RUNNING)
    app.dependency_overrides[get_owned_task] = lambda: OwnedTask("ended-between", RefusingHandle(cause), running)  # type: ignore[arg-type]
    async with asgi_client(app) as http:
        reply = await http.post("/budget/ended-between", json={"budget_usd": 5}, headers=ALICE)
    assert reply.status_code == code and reply.json()["detail"].startswith(said), reply.text
