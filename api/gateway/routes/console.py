"""The console at `/ui`: static files (no build step, nothing from another origin) and the one route made for it.

The page is plain HTML, CSS and JavaScript modules in `api/gateway/ui/`, served as they are in the repository.
Everything it shows comes from the REST routes, called with the key the user signed in with (kept in the
browser's session storage, sent as X-API-KEY), so the console has exactly the rate limits and tenant rules of
the API. `GET /tasks/{session_id}/view` is the task page's data: the state plus the model's plan, code and
documentation already rendered and sanitised (`api.gateway.rendering`), so the browser parses no model output.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, Field
from starlette.responses import Response as StarletteResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from workflows.models import ACCEPTED_RATING, TERMINAL_STATUSES, EventType, FeedbackInput, TaskState, TaskStatus

from .. import rendering
from ..deps import GatewaySettings, Owned, TemporalClient
from ..models import error_responses
from ..streams import GATEWAY_EVENTS
from .tasks import get_status

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
UI_PATH = "/ui"
# No inline script or style, nothing from another origin, no framing; `innerHTML` only through the one Trusted
# Types policy (`console`), which takes the server-sanitised fragments of the view route.
CONSOLE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types console",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate (ETag): a new release shows at the next load
}

router = APIRouter(tags=["console"])


class RenderedTask(BaseModel):
    """HTML fragments, sanitised on the server (nh3 allow-list: no script, no event handler, no image)."""

    plan_html: str | None = Field(description="the plan, Markdown rendered")
    code_html: str | None = Field(description="the code, highlighted, each line followed by its pylint messages")
    docs_html: str | None = Field(description="the documentation, Markdown rendered")


class TaskView(BaseModel):
    session_id: str
    run_id: str
    workflow_status: str = Field(description="Temporal's execution status: RUNNING, COMPLETED, CANCELED, ...")
    web_ui_url: str = Field(description="this run in the Temporal Web UI")
    state: TaskState
    rendered: RenderedTask


def render(state: TaskState) -> RenderedTask:
    code = state.results.code_generation
    docs = state.results.documentation
    messages = code.lint.messages if code is not None and code.lint is not None else []
    return RenderedTask(
        plan_html=rendering.render_markdown(state.plan) if state.plan else None,
        code_html=rendering.render_code(code.code, messages) if code is not None else None,
        docs_html=rendering.render_markdown(docs.documentation) if docs is not None else None,
    )


@router.get(
    "/tasks/{session_id}/view",
    response_model=TaskView,
    summary="The task as the console shows it: state, rendered results, Web UI link",
    responses=error_responses(401, 404, 422, 429, 502, 503),
)
async def task_view(task: Owned, client: TemporalClient, settings: GatewaySettings) -> TaskView:
    """`GET /status` plus the plan, code and documentation as sanitised HTML, for a page that must not parse
    model output itself."""
    state = await get_status(task, settings)
    run_id = task.description.run_id
    link = (
        f"{settings.web_ui_url}/namespaces/{quote(client.namespace, safe='')}/workflows/"
        f"{quote(task.session_id, safe='')}/{quote(run_id, safe='')}/history"
    )
    workflow_status = task.description.status.name if task.description.status else "UNKNOWN"
    return TaskView(
        session_id=task.session_id,
        run_id=run_id,
        workflow_status=workflow_status,
        web_ui_url=link,
        state=state,
        rendered=render(state),
    )


def contract() -> dict[str, Any]:
    """What the page must know of the task contract, from the models that define it: the task statuses in their
    order, those a task never leaves, the event types (the workflow's and the gateway's), the rating's range and
    the lowest rating that completes a task."""
    rating = FeedbackInput.model_json_schema()["properties"]["rating"]
    return {
        "STATUS": {status.name: status.value for status in TaskStatus},
        "ENDED": [status.value for status in TaskStatus if status in TERMINAL_STATUSES],
        "EVENT": {event.name: event.value for event in EventType} | {name.upper(): name for name in GATEWAY_EVENTS},
        "RATING": {"min": rating["minimum"], "max": rating["maximum"], "accepted": ACCEPTED_RATING},
    }


def contract_module() -> str:
    """`contract()` as an ES module, one `export const` per name."""
    lines = ["// The task contract, generated by the gateway from workflows/models.py: do not restate it in the page."]
    lines += [f"export const {name} = {json.dumps(value)};" for name, value in contract().items()]
    return "\n".join(lines) + "\n"


# The console's files made by the gateway, not kept in ui/: name -> (media type, maker).
GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "highlight.css": ("text/css", rendering.highlight_css),  # Pygments' classes
    "contract.js": ("text/javascript", contract_module),  # the task contract
}


def _generated(media_type: str, make: Callable[[], str]) -> Callable[[], Awaitable[Response]]:
    async def route() -> Response:
        return Response(make(), media_type=media_type, headers=SECURITY_HEADERS)

    return route


class ConsoleFiles(StaticFiles):
    """The console's files, each answered with the console's security headers."""

    async def get_response(self, path: str, scope: Scope) -> StarletteResponse:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_console(app: FastAPI) -> None:
    """`/ui/` (index.html and its modules) and the files the gateway generates (`GENERATED`)."""
    for name, (media_type, make) in GENERATED.items():
        app.add_api_route(f"{UI_PATH}/{name}", _generated(media_type, make), methods=["GET"], include_in_schema=False)

    app.mount(UI_PATH, ConsoleFiles(directory=UI_DIR, html=True), name="console")
