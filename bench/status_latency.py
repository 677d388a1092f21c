"""Latency of `GET /status/{session_id}` through a running gateway (uvicorn + Temporal + worker).

    ORCHESTRATOR_API_KEY=... python -m bench.status_latency [--url http://127.0.0.1:8002] [--requests 500]

Starts one task in JSON mode (it waits for feedback, so every request reads a live workflow), warms up, then
issues N sequential requests over one keep-alive connection and prints p50/p90/p99. The task is cancelled at
the end. The gateway's rate limit must allow the requests (e.g. GATEWAY_RATE_LIMIT=100000/minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import httpx

WARMUP = 20


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8002"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--key", default=os.environ.get("ORCHESTRATOR_API_KEY"), help="default $ORCHESTRATOR_API_KEY")
    args = parser.parse_args()
    if not args.key:
        parser.error("set ORCHESTRATOR_API_KEY or pass --key")

    with httpx.Client(base_url=args.url, headers={"X-API-KEY": args.key}, timeout=30) as http:
        started = http.post("/invoke?stream=false", json={"task_description": "write an add function"})
        started.raise_for_status()
        session_id = started.json()["session_id"]
        try:
            for _ in range(WARMUP):
                http.get(f"/status/{session_id}").raise_for_status()
            timings: list[float] = []
            for _ in range(args.requests):
                begin = time.perf_counter()
                response = http.get(f"/status/{session_id}")
                timings.append(1000 * (time.perf_counter() - begin))
                if response.status_code != 200:
                    print(f"status {response.status_code}: {response.text}", file=sys.stderr)
                    return 1
        finally:
            http.post(f"/cancel/{session_id}")
    timings.sort()
    print(
        f"GET /status/{{id}} x{len(timings)} sequential: p50 {statistics.median(timings):.2f} ms, "
        f"p90 {percentile(timings, 0.9):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms, "
        f"mean {statistics.fmean(timings):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
