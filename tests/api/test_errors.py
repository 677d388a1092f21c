"""One error shape for every 4xx of the three apps, undecodable bodies and wrong methods included."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from openapi_spec_validator import OpenAPIV31SpecValidator
from temporalio.client import Client

from api.auth import ApiKeyRegistry
from api.codec.main import create_app as codec_app
from api.codec.settings import CodecSettings
from api.errors import ErrorOut
from api.memory.kb import open_knowledge_base
from api.memory.main import create_app as memory_app
from api.memory.settings import MemorySettings
from api.schema import NOT_BLANK
from orchestrator.codec import EncryptionCodec, parse_keys
from tests.gateway.support import ALICE, ALICE_KEY, make_app
from tests.support import TEST_API_KEY, Serve, free_port

NOT_UTF8 = b'{"rating": "\xff\xfe"}'
KEY = {"X-API-KEY": ALICE_KEY}
JSON = {"Content-Type": "application/json"}

# app, method, path, body (bytes: sent as is), headers, expected status, the field a 422 names, Allow of a 405
CASES: list[tuple[str, str, str, Any, dict[str, str], int, str | None]] = [
    ("gateway", "POST", "/invoke?stream=false", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("gateway", "POST", "/feedback/task-1", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("gateway", "POST", "/feedback/task-1", b"{not json", {**KEY, **JSON}, 422, "body"),
    ("memory", "POST", "/rag_query", b'{"query": "x",', {**KEY, **JSON}, 422, "body"),
    ("codec", "POST", "/encode", b"payloads", {**KEY, **JSON}, 422, "body"),
    ("gateway", "POST", "/invoke?stream=1", {"task_description": "x"}, KEY, 422, "query.stream"),
    ("gateway", "GET", "/invoke", None, KEY, 405, "POST"),
    ("gateway", "POST", "/status/task-1", None, KEY, 405, "GET"),
    ("gateway", "GET", "/status/task-1", None, {}, 401, None),
    ("gateway", "GET", "/status/a%20b", None, KEY, 422, "path.session_id"),
    ("gateway", "GET", "/status/no-such-task", None, KEY, 404, None),
    ("gateway", "GET", "/no-such-route", None, KEY, 404, None),
    ("memory", "POST", "/rag_query", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("memory", "POST", "/documents", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("memory", "PUT", "/documents", None, KEY, 405, "DELETE, POST"),
    ("memory", "POST", "/rag_query", {"query": "x", "top_k": "3"}, KEY, 422, "body.top_k"),
    ("memory", "POST", "/rag_query", {"query": "x", "top_k": True}, KEY, 422, "body.top_k"),
    ("memory", "DELETE", "/documents?source=nope", None, KEY, 404, None),
    ("memory", "GET", "/stats", None, {}, 401, None),
    ("codec", "POST", "/decode", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("codec", "POST", "/default/encode", {"payloads": [{"data": "%%%"}]}, KEY, 422, "body.payloads.0.data"),
    ("codec", "POST", "/decode", {"payloads": [], "extra": 1}, KEY, 422, "body.extra"),
    ("codec", "GET", "/decode", None, KEY, 405, "POST"),
    ("codec", "POST", "/decode", {"payloads": []}, {}, 401, None),
]


@pytest.fixture
async def built(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[dict[str, FastAPI]]:
    registry = ApiKeyRegistry({"alice": ALICE_KEY})
    # BM25 only: error shapes need no model, and a model per test would be ~90 MB each that FastAPI's caches keep
    settings = MemorySettings(memory_db_path=tmp_path / "kb.db", embedding_model="")
    kb = open_knowledge_base(settings)
    codec = EncryptionCodec(parse_keys(f"k1={base64.b64encode(os.urandom(32)).decode()}"))
    yield {
        "gateway": make_app(task_queue, client),
        "memory": memory_app(settings, registry, kb),
        "codec": codec_app(CodecSettings(), registry, codec),
    }
    kb.store.close()


def from_address(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://app")


@pytest.fixture
async def apps(built: dict[str, FastAPI]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    http = {name: from_address(app) for name, app in built.items()}
    yield http
    for each in http.values():
        await each.aclose()


@pytest.mark.parametrize(("app", "method", "path", "body", "headers", "status", "named"), CASES)
async def test_every_error_has_the_one_shape(
    apps: dict[str, httpx.AsyncClient],
    app: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    named: str | None,
) -> None:
    sent = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
    response = await apps[app].request(method, path, headers=headers, **sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert set(error) <= {"detail", "errors"} and ErrorOut.model_validate(error).detail, error
    if status == 422:
        assert [e["field"] for e in error["errors"]] == [named], error
    elif status == 405:
        assert response.headers["allow"] == named
    else:
        assert "errors" not in error
    if status == 401 and app == "codec":
        assert response.headers["www-authenticate"] == "Bearer"


async def test_integral_numbers_are_integers_as_in_json_schema(apps: dict[str, httpx.AsyncClient]) -> None:
    found = await apps["memory"].post("/rag_query", json={"query": "x", "top_k": 3.0}, headers=ALICE)
    assert found.status_code == 200, found.text
    refused = await apps["memory"].post("/rag_query", json={"query": "x", "top_k": 3.5}, headers=ALICE)
    assert refused.status_code == 422


def test_the_published_not_blank_pattern_is_what_the_validators_check() -> None:
    """`str.strip()` decides what is blank; the pattern the documents publish must agree in Python's regex dialect
    and in the schema validator's (Rust), for every character."""
    published = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK})
    python = re.compile(NOT_BLANK)
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # lone surrogates are not text (and are refused as such)
        char = chr(code)
        assert published.is_valid(char) == bool(python.search(char)) == (not char.isspace()), hex(code)


# a route of each app that needs a key; what a good key gets there
AUTHENTICATED: dict[str, tuple[str, str, Any, int]] = {
    "gateway": ("GET", "/status/no-such-task", None, 404),
    "memory": ("GET", "/stats", None, 200),
    "codec": ("POST", "/decode", {"payloads": []}, 200),
}


@pytest.mark.parametrize("app", list(AUTHENTICATED))
async def test_failed_keys_are_throttled_per_address_and_each_refusal_logged(
    built: dict[str, FastAPI], app: str, caplog: pytest.LogCaptureFixture
) -> None:
    """1,400 requests with a wrong or no key: the first AUTH_FAILURE_LIMIT (20 a minute) are 401, the rest 429
    with Retry-After (a good key from that address too); one log line per refusal, naming the address and the
    route, never the key. Another address, with a good key, goes on as usual."""
    method, path, body, good = AUTHENTICATED[app]
    wrong = "wrong-key-0123456789abcdef-SECRET"
    caplog.set_level(logging.WARNING, logger="api.auth")
    statuses = []
    async with from_address(built[app], "203.0.113.7") as attacker:
        for i in range(1400):
            headers = {"X-API-KEY": wrong} if i % 2 else {}
            response = await attacker.request(method, path, json=body, headers=headers)
            statuses.append(response.status_code)
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert ErrorOut.model_validate(response.json()).detail
        assert (await attacker.request(method, path, json=body, headers=KEY)).status_code == 429
    refusals = [r.getMessage() for r in caplog.records if r.name == "api.auth"]
    assert len(refusals) == 1401
    assert all("203.0.113.7" in line and path in line for line in refusals)
    assert "unknown API key" in refusals[1] and "no API key" in refusals[0] and "too many" in refusals[-1]
    assert wrong not in caplog.text and ALICE_KEY not in caplog.text
    async with from_address(built[app], "198.51.100.2") as other:
        assert (await other.request(method, path, json=body, headers=KEY)).status_code == good


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_a_number_that_is_not_finite_is_named_so(
    apps: dict[str, httpx.AsyncClient], client: Client, number: str
) -> None:
    """Python's JSON parser takes NaN and Infinity (JSON has neither); refused as what they are, not as too large."""
    started = await apps["gateway"].post("/invoke?stream=false", json={"task_description": "x"}, headers=KEY)
    assert started.status_code == 202  # no worker: it stays put, and is the caller's task to raise a budget on
    for path, body in (
        ("/invoke?stream=false", f'{{"task_description": "x", "budget_usd": {number}}}'),
        (f"/budget/{started.json()['session_id']}", f'{{"budget_usd": {number}}}'),
    ):
        response = await apps["gateway"].post(path, content=body.encode(), headers={**KEY, **JSON})
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {"field": "body.budget_usd", "reason": "Input should be a finite number", "type": "finite_number"}
        ]
    await client.get_workflow_handle(started.json()["session_id"]).terminate("test over")


async def test_a_body_that_is_not_json_is_named_the_body(apps: dict[str, httpx.AsyncClient]) -> None:
    response = await apps["gateway"].post("/feedback/task-1", content=b'{"rating": 5,', headers={**KEY, **JSON})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body" and error["type"] == "json_invalid"
    assert error["reason"].startswith("the body is not valid JSON: ") and "at character 13" in error["reason"]


async def test_each_openapi_document_is_valid_openapi_3_1(built: dict[str, FastAPI]) -> None:
    """The documents say 3.1.0 and are 3.1 (no 3.2 `itemSchema`: an event stream's `schema` describes each event)."""
    for name, app in built.items():
        document = app.openapi()
        assert document["openapi"] == "3.1.0"
        OpenAPIV31SpecValidator(document).validate()  # raises, naming the offending place
        assert "itemSchema" not in json.dumps(document), name


async def test_a_client_cannot_escape_the_throttle_by_naming_another_address(serve: Serve, tmp_path: Path) -> None:
    """The codec server as `python -m api.codec` runs it: uvicorn trusts no X-Forwarded-For unless
    FORWARDED_ALLOW_IPS names the proxy, so a local client rotating it is still one address."""
    port = free_port()
    keys = f"k1={base64.b64encode(os.urandom(32)).decode()}"
    env = {"ORCHESTRATOR_API_KEY": TEST_API_KEY, "PAYLOAD_ENCRYPTION_KEYS": keys, "CODEC_SERVER_PORT": str(port),
           "AUTH_FAILURE_LIMIT": "5/minute"}  # fmt: skip
    url = await asyncio.to_thread(serve, ["-m", "api.codec"], env, port)
    async with httpx.AsyncClient(base_url=url) as http:
        statuses = []
        for i in range(12):
            spoofed = {"X-Forwarded-For": f"198.51.100.{i}"}
            statuses.append((await http.post("/decode", json={"payloads": []}, headers=spoofed)).status_code)
    assert statuses == [401] * 5 + [429] * 7
