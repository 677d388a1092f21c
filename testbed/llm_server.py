"""A local server that speaks the OpenAI chat-completions and Anthropic messages HTTP APIs.

The real `openai` and `anthropic` SDKs talk to it. It answers deterministically like a small tool-using model
(first turn: call `search_knowledge` and `lint`; after tool results: a final answer), counts every reply it
serves per distinct request, and can inject faults (429 with Retry-After, 5xx, slow replies, 401, malformed or
empty bodies) or hold a request until the test releases it. Also used by the benchmarks, with a latency.

A request with `"stream": true` (what the providers send) is answered in the provider's streaming wire format:
OpenAI's chunked `data:` lines ending `data: [DONE]` (usage in a last chunk when `stream_options.include_usage`),
Anthropic's `message_start`, `content_block_start`/`_delta`/`_stop`, `message_delta`, `message_stop` events. Text
comes in pieces of `piece_chars`, `chunk_delay` seconds apart (`chunk_log` notes when each piece was written); a
fault can cut a stream mid-way or leave its usage out. `streams = False` makes it a server that does not stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from testbed.server import ThreadedServer

GOOD_CODE = '''"""Arithmetic helpers."""


def add(first: int, second: int) -> int:
    """Return the sum of two integers."""
    return first + second
'''
DRAFT_CODE = "def add(a,b):\n  return a+b\n"
# A task whose description holds this marker gets lint-failing code first, and good code once pylint's verdict
# comes back to it (the quality gate's fix round); NEVER_FIXES gets bad code every time.
NEEDS_ONE_FIX = "[needs one fix]"
NEVER_FIXES = "[never fixes]"
BAD_CODE = '"""Arithmetic helpers."""\n\n\ndef add(first: int, second: int) -> int:\n    return first + secnd\n'
# A task whose description holds this marker gets a product that is wrong but lint-clean, and the right one once
# failing tests came back to it (the test gate's fix round).
WRONG_PRODUCT_FIRST = "[wrong product first]"
PRODUCT_CODE = '''"""Arithmetic helpers."""


def product(first: int, second: int) -> int:
    """Return the product of two integers."""
    return first * second{}
'''
WRONG_PRODUCT, RIGHT_PRODUCT = PRODUCT_CODE.format(" + first + 1"), PRODUCT_CODE.format("")
# The tests it writes when asked for its own: the wrong product fails the first and passes the second.
PRODUCT_TESTS = """from solution import product


def test_product():
    assert product(2, 3) == 6


def test_product_of_minus_one():
    assert product(-1, 5) == -5
"""


@dataclass
class Fault:
    """What to answer instead of a normal reply, for the next request of a provider (optionally matching text)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # raw body to send instead of a normal reply
    delay: float = 0.0  # seconds to wait before answering
    match: str | None = None  # only requests whose body contains this text
    cut_after: int | None = None  # a streamed reply: drop the connection after this many events (no end)
    no_usage: bool = False  # a streamed reply without usage (OpenAI: no usage chunk; Anthropic: zero counts)


class FakeLlmServer:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.streams = True  # answer `"stream": true` requests with a stream (False: a server that never streams)
        self.piece_chars = 16  # text characters per streamed chunk
        self.chunk_delay = 0.0  # seconds between streamed chunks
        self.stream_seconds = 0.0  # without a chunk_delay: each reply's chunks spread over this long
        self.chunk_log: list[tuple[float, str]] = []  # (time.time(), text) of every text piece written
        self.cut = 0  # streams cut mid-way by a fault
        self.faults: dict[str, list[Fault]] = {"openai": [], "anthropic": []}
        self.served: Counter[str] = Counter()  # request hash -> successful replies
        self.requests: list[dict[str, Any]] = []  # every request seen: provider, status, body
        self.hold_after: int | None = None  # hold requests once this many replies were served
        self.held = 0
        self.hold_mid_stream: int | None = None  # hold a streamed reply after this many events instead (then cut)
        self.prompt_cache: set[str] = set()  # prefixes "cached" so far, like the providers' prompt caches
        self._released = threading.Event()
        self._generation = 0
        self._lock = threading.Lock()
        self.app = self._build_app()
        self._http = ThreadedServer(self.app)

    # ---------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def reset(self) -> None:
        self.release()  # a request held by the previous test must not land in this one's records
        with self._lock:
            self._generation += 1
            self.faults = {"openai": [], "anthropic": []}
            self.served.clear()
            self.requests.clear()
            self.hold_after = None
            self.held = 0
            self.hold_mid_stream = None
            self.prompt_cache.clear()
            self._released.clear()
            self.streams = True
            self.piece_chars = 16
            self.chunk_delay = 0.0
            self.stream_seconds = 0.0
            self.chunk_log.clear()
            self.cut = 0

    def add_fault(self, provider: str, fault: Fault) -> None:
        with self._lock:
            self.faults[provider].append(fault)

    def release(self) -> None:
        """Let held requests go on; they are answered with 503 (a stream held mid-way is cut) and not counted as
        served."""
        self._released.set()

    @property
    def total_served(self) -> int:
        return sum(self.served.values())

    def start(self) -> FakeLlmServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    # ---------------------------------------------------------------- serving

    def _take_fault(self, provider: str, body: bytes) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.faults[provider]):
                if fault.match is None or fault.match.encode() in body:
                    return self.faults[provider].pop(i)
        return None

    def _record(self, record: dict[str, Any], generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self.requests.append(record)

    async def _serve(self, provider: str, request: Request, build: Any) -> Response:
        body = await request.body()
        generation = self._generation
        record: dict[str, Any] = {
            "provider": provider,
            "body": json.loads(body),
            "headers": dict(request.headers),
            "at": time.monotonic(),
        }
        mid_stream = self.hold_mid_stream is not None and json.loads(body).get("stream") and self.streams
        if self.hold_after is not None and self.total_served >= self.hold_after and not mid_stream:
            with self._lock:
                self.held += 1
            await asyncio.to_thread(self._released.wait)
            record["status"] = 503
            self._record(record, generation)
            return JSONResponse({"error": {"message": "released after hold"}}, status_code=503)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(provider, body)
        if fault is not None and fault.cut_after is not None:
            record["cut_after"] = fault.cut_after
        if fault is not None:
            await asyncio.sleep(fault.delay)
            if fault.status != 200 or fault.body is not None:
                record["status"] = fault.status
                self._record(record, generation)
                return Response(
                    fault.body if fault.body is not None else json.dumps({"error": {"message": "injected fault"}}),
                    status_code=fault.status,
                    headers=fault.headers,
                    media_type="application/json",
                )
        payload = build(record["body"], self.prompt_cache)
        record["usage"] = payload["usage"]
        if record["body"].get("stream") and self.streams:
            events = _openai_events if provider == "openai" else _anthropic_events
            return self._stream(record, generation, body, events(record["body"], payload, self, fault))
        self._count_served(body, generation)
        record["status"] = 200
        self._record(record, generation)
        return JSONResponse(payload)

    def _count_served(self, body: bytes, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self.served[hashlib.sha256(body).hexdigest()] += 1

    def _stream(self, record: dict[str, Any], generation: int, body: bytes, events: list[tuple[str, str]]) -> Response:
        """Send `events` ((text piece, SSE frame) pairs) as a stream; a cut one ends without its last frames and
        is not counted as served (nor is one whose client went away)."""
        fault_cut = record.pop("cut_after", None)
        hold_at = self.hold_mid_stream if self.hold_after is not None and self.total_served >= self.hold_after else None

        async def frames() -> Any:
            for i, (piece, frame) in enumerate(events):
                if hold_at is not None and i == hold_at:
                    record["status"] = "cut"  # whatever comes next (its client gone, or released), it is not served
                    self._record(record, generation)
                    with self._lock:
                        self.held += 1
                    await asyncio.to_thread(self._released.wait)
                    raise ConnectionAbortedError("stream held mid-way, then cut (released)")
                if fault_cut is not None and i >= fault_cut:
                    record["status"] = "cut"
                    self._record(record, generation)
                    with self._lock:
                        self.cut += 1
                    raise ConnectionAbortedError("stream cut mid-way (injected)")
                if i and (self.chunk_delay or self.stream_seconds):
                    await asyncio.sleep(self.chunk_delay or self.stream_seconds / len(events))
                if piece:
                    self.chunk_log.append((time.time(), piece))
                yield frame.encode()
            self._count_served(body, generation)
            record["status"] = 200
            self._record(record, generation)

        return StreamingResponse(frames(), media_type="text/event-stream")

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            return await self._serve("openai", request, _openai_reply)

        @app.post("/v1/messages")
        async def messages(request: Request) -> Response:
            return await self._serve("anthropic", request, _anthropic_reply)

        return app


# -------------------------------------------------------------------- deterministic "model"


def _final_text(system: str, messages: list[dict[str, Any]]) -> str:
    if "planner" in system:
        return "1. Write an add function.\n2. Lint it.\n3. Document it."
    if "technical writer" in system:
        return "# add\n\n`add(first, second)` returns the sum of two integers.\n"
    conversation = json.dumps(messages)
    if WRONG_PRODUCT_FIRST in conversation:
        code = RIGHT_PRODUCT if "The tests did not pass" in conversation else WRONG_PRODUCT
        own_tests = f"```python\n{PRODUCT_TESTS}```\n" if "second ```python block" in conversation else ""
        return f"```python\n{code}```\n{own_tests}\nA product."
    shown_pylint = "pylint scored" in conversation
    if NEVER_FIXES in conversation or (NEEDS_ONE_FIX in conversation and not shown_pylint):
        return f"```python\n{BAD_CODE}```\n\nA helper."
    return f"```python\n{GOOD_CODE}```\n\nA small, typed helper."


# `[tool NAME {"arg": value}]` in a task's description: the code agent's first turn calls NAME with those arguments
# instead of the built-in tools (the MCP tests script their tool calls this way).
TOOL_MARKER = re.compile(r"\[tool ([A-Za-z0-9_-]+) (\{[^\[\]]*\})\]")


def _tool_calls(system: str, messages: list[dict[str, Any]] | None = None) -> list[tuple[str, dict[str, Any]]]:
    said = " ".join(m["content"] for m in messages or [] if isinstance(m.get("content"), str))
    if "technical writer" not in system and (marked := TOOL_MARKER.findall(said)):
        return [(name, json.loads(arguments)) for name, arguments in marked]
    calls: list[tuple[str, dict[str, Any]]] = [("search_knowledge", {"query": "add two numbers", "top_k": 2})]
    if "technical writer" not in system:
        calls.append(("lint", {"code": DRAFT_CODE}))
    return calls


def _tokens(data: Any) -> int:
    return max(1, len(json.dumps(data)) // 4)


OPENAI_CACHE_MIN_TOKENS = 1024  # OpenAI caches prompt prefixes from this length on, by itself


def _cached(prefix: Any, cache: set[str]) -> bool:
    """Whether `prefix` was seen before (then it is read from the cache); remembers it."""
    key = hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest()
    seen = key in cache
    cache.add(key)
    return seen


def _openai_usage(messages: list[dict[str, Any]], message: dict[str, Any], cache: set[str]) -> dict[str, Any]:
    """OpenAI's usage block: the system prompt and first user turn, when long enough and seen before, are cached."""
    prompt = _tokens(messages)
    prefix = _tokens(messages[:2])
    cached = prefix if prefix >= OPENAI_CACHE_MIN_TOKENS and _cached(messages[:2], cache) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": _tokens(message),
        "total_tokens": prompt + _tokens(message),
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _anthropic_usage(body: dict[str, Any], content: list[dict[str, Any]], cache: set[str]) -> dict[str, Any]:
    """Anthropic's usage block: the prefix up to the block marked `cache_control` is written to the cache the
    first time and read from it after; `input_tokens` counts only the rest, as Anthropic does."""
    messages = body["messages"]
    total = _tokens(messages)
    marked = next(
        (
            i
            for i, m in enumerate(messages)
            if isinstance(m["content"], list) and any("cache_control" in b for b in m["content"])
        ),
        None,
    )
    read = written = 0
    if marked is not None:
        prefix = [body.get("tools"), body.get("system"), messages[: marked + 1]]
        size = min(total - 1, _tokens(messages[: marked + 1]))
        read, written = (size, 0) if _cached(prefix, cache) else (0, size)
    return {
        "input_tokens": total - read - written,
        "output_tokens": _tokens(content),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }


def _openai_reply(body: dict[str, Any], cache: set[str]) -> dict[str, Any]:
    messages = body["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    has_tool_results = any(m["role"] == "tool" for m in messages)
    if body.get("tools") and not has_tool_results:
        n = sum(1 for m in messages if m["role"] == "assistant")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(_tool_calls(system, messages))
            ],
        }
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": _final_text(system, messages)}, "stop"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _openai_usage(messages, message, cache),
    }


def _anthropic_reply(body: dict[str, Any], cache: set[str]) -> dict[str, Any]:
    system = body.get("system", "")
    messages = body["messages"]
    has_tool_results = any(
        isinstance(m["content"], list) and any(b.get("type") == "tool_result" for b in m["content"]) for m in messages
    )
    if body.get("tools") and not has_tool_results:
        content = [
            {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(_tool_calls(system))
        ]
        stop = "tool_use"
    else:
        content, stop = [{"type": "text", "text": _final_text(system, messages)}], "end_turn"
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(body, content, cache),
    }


# -------------------------------------------------------------------- streaming wire formats


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _openai_events(
    body: dict[str, Any], payload: dict[str, Any], server: FakeLlmServer, fault: Fault | None
) -> list[tuple[str, str]]:
    """A chat completion as OpenAI streams it: `data: {chunk}` lines, then `data: [DONE]`."""
    choice = payload["choices"][0]
    message = choice["message"]
    base = {"id": payload["id"], "object": "chat.completion.chunk", "created": 0, "model": payload["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data)}\n\n"

    out = [("", chunk({"role": "assistant", "content": ""}))]
    out += [(piece, chunk({"content": piece})) for piece in _pieces(message.get("content") or "", server.piece_chars)]
    for i, call in enumerate(message.get("tool_calls") or []):
        head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        out.append(("", chunk({"tool_calls": [{**head, "function": {**head["function"], "arguments": ""}}]})))
        for fragment in _pieces(call["function"]["arguments"], 24):
            out.append(("", chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})))
    out.append(("", chunk({}, choice["finish_reason"])))
    include_usage = (body.get("stream_options") or {}).get("include_usage")
    if include_usage and not (fault and fault.no_usage):
        out.append(("", f"data: {json.dumps({**base, 'choices': [], 'usage': payload['usage']})}\n\n"))
    out.append(("", "data: [DONE]\n\n"))
    return out


def _anthropic_events(
    body: dict[str, Any], payload: dict[str, Any], server: FakeLlmServer, fault: Fault | None
) -> list[tuple[str, str]]:
    """A message as Anthropic streams it: `message_start`, per block `content_block_start`, `_delta`s and
    `_stop`, then `message_delta` (stop reason, output tokens) and `message_stop`."""

    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    usage = dict(payload["usage"])
    if fault and fault.no_usage:
        usage = {"input_tokens": 0, "output_tokens": 0}
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    out = [
        ("", event("message_start", {"message": {**payload, "content": [], "stop_reason": None, "usage": start_usage}}))
    ]
    for i, block in enumerate(payload["content"]):
        if block["type"] == "text":
            out.append(("", event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})))
            for piece in _pieces(block["text"], server.piece_chars):
                delta = {"index": i, "delta": {"type": "text_delta", "text": piece}}
                out.append((piece, event("content_block_delta", delta)))
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            out.append(("", event("content_block_start", {"index": i, "content_block": head})))
            for fragment in _pieces(json.dumps(block["input"]), 24):
                delta = {"index": i, "delta": {"type": "input_json_delta", "partial_json": fragment}}
                out.append(("", event("content_block_delta", delta)))
        out.append(("", event("content_block_stop", {"index": i})))
    stop = {"stop_reason": payload["stop_reason"], "stop_sequence": None}
    out.append(("", event("message_delta", {"delta": stop, "usage": {"output_tokens": usage["output_tokens"]}})))
    out.append(("", event("message_stop", {})))
    return out
