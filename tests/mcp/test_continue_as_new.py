"""The tool list survives continue-as-new: a task lists its MCP tools once, and the run it continues as (a long
revision loop) offers and calls them without asking the servers again."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import WorkerSettings
from orchestrator.plugin import OrchestratorPlugin
from tests.mcp.test_agent_tools import activities_of
from tests.support import start_task, wait_for_state
from workflows.coding_task import CodingTask
from workflows.models import MCP_CALL_TOOL_ACTIVITY, MCP_LIST_TOOLS_ACTIVITY, FeedbackInput, TaskStatus


async def test_a_continued_run_keeps_the_listed_tools(
    short_history_env: WorkflowEnvironment, mcp_settings: WorkerSettings
) -> None:
    client = short_history_env.client
    task_queue = mcp_settings.temporal_task_queue
    async with Worker(client, task_queue=task_queue, plugins=[OrchestratorPlugin(mcp_settings)]):
        description = 'the time [tool time__get_current_time {"timezone": "UTC"}]'
        handle = await start_task(client, task_queue, task_description=description, max_revisions=1,
                                  mcp_tools=["time"])  # fmt: skip
        first_run = (await handle.describe()).run_id
        latest = client.get_workflow_handle_for(CodingTask.run, handle.id)  # follows the newest run
        await wait_for_state(latest, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK, within=90)
        await latest.signal(CodingTask.feedback, FeedbackInput(rating=1, comment="say the time zone"))
        await wait_for_state(latest, lambda s: s.task_status == TaskStatus.AWAITING_FEEDBACK and s.revisions == 1,
                             within=90)  # fmt: skip
        await latest.signal(CodingTask.feedback, FeedbackInput(rating=5))
        final = await latest.result()

    assert final.task_status == TaskStatus.COMPLETED and final.revisions == 1
    runs = await runs_of(client, handle.id, first_run)
    assert len(runs) >= 2  # the task continued as new
    ran = {run_id: [name for name, _ in await activities_of(client.get_workflow_handle(handle.id, run_id=run_id))]
           for run_id in runs}  # fmt: skip
    assert sum(activities.count(MCP_LIST_TOOLS_ACTIVITY) for activities in ran.values()) == 1  # once per task
    assert ran[first_run].count(MCP_LIST_TOOLS_ACTIVITY) == 1
    # the code agent called the tool in the first run and again in the revision, in a later run, from the kept list
    assert ran[first_run].count(MCP_CALL_TOOL_ACTIVITY) == 1
    assert sum(activities.count(MCP_CALL_TOOL_ACTIVITY) for activities in ran.values()) == 2
    assert final.tool_usage["time.get_current_time"].calls == 2 and not final.warnings, final.warnings


async def runs_of(client: Client, workflow_id: str, run_id: str) -> list[str]:
    """The run `run_id` and each run it continued as, in order (from their histories)."""
    runs = []
    while run_id:
        runs.append(run_id)
        run_id = ""
        async for event in client.get_workflow_handle(workflow_id, run_id=runs[-1]).fetch_history_events():
            if event.HasField("workflow_execution_continued_as_new_event_attributes"):
                run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs
