"""One error shape for every 4xx of the three apps, undecodable bodies and wrong methods included."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
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

NOT_UTF8 = b'{"rating": "\xff\xfe"}'
KEY = {"X-API-KEY": ALICE_KEY}
JSON = {"Content-Type": "application/json"}

# app, method, path, body (bytes: sent as is), headers, expected status, the field a 422 names, Allow of a 405
CASES: list[tuple[str, str, str, Any, dict[str, str], int, str | None]] = [
    ("gateway", "POST", "/invoke?stream=false", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("gateway", "POST", "/feedback/task-1", NOT_UTF8, {**KEY, **JSON}, 422, "body"),
    ("gateway", "POST", "/feedback/task-1", b"{not json", {**KEY, **JSON}, 422, "body.1"),
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
async def apps(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    registry = ApiKeyRegistry({"alice": ALICE_KEY})
    # BM25 only: error shapes need no model, and a model per test would be ~90 MB each that FastAPI's caches keep
    settings = MemorySettings(memory_db_path=tmp_path / "kb.db", embedding_model="")
    kb = open_knowledge_base(settings)
    codec = EncryptionCodec(parse_keys(f"k1={base64.b64encode(os.urandom(32)).decode()}"))
    built: dict[str, FastAPI] = {
        "gateway": make_app(task_queue, client),
        "memory": memory_app(settings, registry, kb),
        "codec": codec_app(CodecSettings(), registry, codec),
    }
    http = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        for name, app in built.items()
    }
    yield http
    for each in http.values():
        await each.aclose()
    kb.store.close()


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
