"""Prometheus metrics of one gateway app, and the ASGI middleware that records requests and latencies."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class GatewayMetrics:
    """One registry per app, so several apps (tests) never collide in the global registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "time to the response headers (an SSE stream counts until it starts)",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.tasks_started = Counter("gateway_tasks_started", "CodingTask workflows started", registry=self.registry)
        self.feedback_received = Counter(
            "gateway_feedback_received", "feedback signals sent", ["rating"], registry=self.registry
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "unmatched")  # the template, never the raw path
                self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
                self.metrics.requests.labels(scope["method"], route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)
