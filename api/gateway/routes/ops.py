"""Operations: /health (no key) and /metrics (Prometheus; key unless GATEWAY_METRICS_PUBLIC=true)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.auth import request_tenant

from ..connection import TemporalUnavailable
from ..deps import Connection, GatewaySettings
from ..metrics import GatewayMetrics
from ..models import HealthOut, error_responses

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])

HEALTH_TIMEOUT = timedelta(seconds=3)
RECENT_POLL = timedelta(seconds=90)  # an idle worker's long poll lasts up to ~70 s before it polls again


@router.get("/health", response_model=HealthOut, summary="Gateway, Temporal and worker health (no key needed)")
async def health(connection: Connection, settings: GatewaySettings) -> HealthOut:
    """Always 200 while the gateway runs; `status` is `degraded` with `reasons` when Temporal or workers are missing."""
    queue = settings.temporal_task_queue
    reasons: list[str] = []
    temporal = worker = False
    try:
        client = await connection.get()
        await client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        temporal = True
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=HEALTH_TIMEOUT,
        )
        recent = datetime.now(UTC) - RECENT_POLL
        worker = any(p.last_access_time.ToDatetime(UTC) >= recent for p in described.pollers)
        if not worker:
            reasons.append(f"no worker is polling the task queue {queue!r}")
    except TemporalUnavailable as exc:
        reasons.append(str(exc))
    except Exception as exc:  # any failure to answer is a reason to report, never a 500
        reasons.append(f"Temporal did not answer: {str(exc) or type(exc).__name__}")
    if reasons:
        logger.warning("health degraded: %s", "; ".join(reasons))
    return HealthOut(
        status="degraded" if reasons else "healthy", temporal=temporal, worker=worker, task_queue=queue, reasons=reasons
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **error_responses(401),
    },
)
async def metrics(request: Request, settings: GatewaySettings) -> Response:
    if not settings.gateway_metrics_public:
        await request_tenant(request, request.headers.get("x-api-key"))
    registry: GatewayMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
