"""The fake providers for the benchmark, in their own process: OpenAI + Anthropic (tests' FakeLlmServer) and a
tiny memory API (`POST /rag_query`), on one port.

    python -m bench.servers      # prints {"base_url": ...} on stdout, then serves until stdin closes

`POST /_bench/latency {"latency": 0.2}` sets the per-call LLM latency (`"stream_seconds": 2.7`: and each reply
streamed over that long); `POST /_bench/reset` forgets what the fake server recorded (it keeps every request, which
would otherwise grow over a long run) and stops streaming slowly.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import Request

from testbed.llm_server import FakeLlmServer

RAG_RESULTS = {
    "results": [
        {
            "content": "def add(first: int, second: int) -> int:\n    return first + second\n",
            "source": "a.py",
            "score": 1.5,
        },
        {"content": "Integers in Python have arbitrary precision.", "source": "notes.md", "score": 0.7},
    ]
}


class BenchServers(FakeLlmServer):
    def __init__(self) -> None:
        super().__init__(latency=0.0)

        @self.app.post("/rag_query")
        async def rag_query(request: Request) -> dict[str, Any]:
            await request.body()
            return RAG_RESULTS

        @self.app.post("/_bench/latency")
        async def set_latency(request: Request) -> dict[str, float]:
            body = await request.json()
            self.latency, self.stream_seconds = float(body["latency"]), float(body.get("stream_seconds", 0))
            return {"latency": self.latency, "stream_seconds": self.stream_seconds}

        @self.app.post("/_bench/reset")
        async def reset() -> dict[str, int]:
            served = self.total_served
            self.reset()
            return {"served": served}


def main() -> None:
    server = BenchServers()
    server.start()
    print(json.dumps({"base_url": server.base_url}), flush=True)
    sys.stdin.read()  # the harness closes our stdin (or dies) to stop us
    server.stop()


if __name__ == "__main__":
    main()
