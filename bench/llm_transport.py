"""Client CPU per model call: the SDKs' default httpx2 transport vs their aiohttp transport, side by side.

    python -m bench.llm_transport [--calls 200] [--rounds 4]

The fake providers (`bench.servers`) run in their own process, so only the client's CPU is counted: the
openai and anthropic SDKs as `activities.llm` builds them, `--calls` concurrent calls per round, transports
alternating round by round. Prints the median CPU per call and the ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import openai

ROOT = Path(__file__).resolve().parent.parent
MESSAGES: list[Any] = [{"role": "user", "content": "Write a function add(first, second). " * 20}]


Clients = tuple[dict[str, Callable[[], Awaitable[object]]], list[openai.AsyncOpenAI | anthropic.AsyncAnthropic]]


def clients(base_url: str, aiohttp: bool) -> Clients:
    """A call per provider, and the clients to close."""
    oa = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url=f"{base_url}/v1",
        max_retries=0,
        http_client=openai.DefaultAioHttpClient() if aiohttp else None,
    )
    an = anthropic.AsyncAnthropic(
        api_key="sk-bench",
        base_url=base_url,
        max_retries=0,
        http_client=anthropic.DefaultAioHttpClient() if aiohttp else None,
    )
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "openai": lambda: oa.chat.completions.create(model="gpt-4o", messages=MESSAGES),
        "anthropic": lambda: an.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES),
    }
    return calls, [oa, an]


async def measure(base_url: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    built = {"httpx2": clients(base_url, aiohttp=False), "aiohttp": clients(base_url, aiohttp=True)}
    transports = {name: provider_calls for name, (provider_calls, _) in built.items()}
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        for provider_calls in transports.values():  # warm up: connections, imports, first-call caches
            for call in provider_calls.values():
                await asyncio.gather(*(call() for _ in range(min(calls, 50))))
        for _ in range(rounds):
            for transport, provider_calls in transports.items():
                for provider, call in provider_calls.items():
                    began = time.process_time()
                    await asyncio.gather(*(call() for _ in range(calls)))
                    samples.setdefault((provider, transport), []).append((time.process_time() - began) / calls)
    finally:
        for _, opened in built.values():
            for client in opened:
                await client.close()
    return {
        provider: {t: statistics.median(samples[(provider, t)]) for t in transports}
        for provider in ("openai", "anthropic")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    servers = subprocess.Popen(
        [sys.executable, "-m", "bench.servers"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert servers.stdout is not None
        base_url = json.loads(servers.stdout.readline())["base_url"]
        result = asyncio.run(measure(base_url, args.calls, args.rounds))
    finally:
        if servers.stdin:
            servers.stdin.close()
        servers.wait(timeout=30)
    for provider, cpu in result.items():
        print(
            f"{provider:<9}  httpx2 {cpu['httpx2'] * 1000:.2f} ms  aiohttp {cpu['aiohttp'] * 1000:.2f} ms  "
            f"client CPU per call, aiohttp / httpx2 = {cpu['aiohttp'] / cpu['httpx2']:.2f}"
        )


if __name__ == "__main__":
    main()
