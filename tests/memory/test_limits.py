"""What one request may bring and one answer may carry: a body limit (413 naming it), chunks of bounded size
whatever the text, and bodies with exactly their fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.memory.chunking import MAX_STORED_CHUNK_CHARS
from api.memory.settings import MemorySettings
from tests.memory.test_tenants import ALICE, memory_app

LIMIT = MemorySettings().memory_max_body_bytes


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with memory_app(tmp_path / "memory.db") as client:
        yield client


def test_a_body_over_the_limit_is_a_413_naming_it_and_nothing_is_stored(client: TestClient) -> None:
    body = {"documents": [{"source": f"big{i}.txt", "content": "word " * 400_000} for i in range(5)]}  # 10 MB
    r = client.post("/documents", json=body, headers=ALICE)
    assert r.status_code == 413 and r.json() == {"detail": f"request body larger than {LIMIT} bytes"}
    chunked = client.post("/rag_query", content=iter([b'{"query": "', b"x" * LIMIT, b'"}']), headers=ALICE)
    assert chunked.status_code == 413  # no Content-Length: counted as it streams
    assert client.get("/stats", headers=ALICE).json()["documents"] == 0


def test_a_document_without_line_breaks_is_stored_in_bounded_chunks(client: TestClient) -> None:
    content = "".join(f"zebracorn{i:07d} " for i in range(117_000))  # about 2 MB, one line
    r = client.post("/documents", json={"documents": [{"source": "one-line.txt", "content": content}]}, headers=ALICE)
    assert r.status_code == 200 and r.json()["results"][0]["chunks"] >= len(content) // MAX_STORED_CHUNK_CHARS
    r = client.post("/rag_query", json={"query": "zebracorn0000001 zebracorn0116999", "top_k": 50}, headers=ALICE)
    hits = r.json()["results"]
    assert hits and all(len(hit["content"]) <= MAX_STORED_CHUNK_CHARS for hit in hits)
    assert len(r.content) < 50 * MAX_STORED_CHUNK_CHARS * 1.2  # one answer: at most top_k bounded chunks
    assert {hit["start_line"] for hit in hits} == {1}


def test_bodies_refuse_unknown_fields_naming_them(client: TestClient) -> None:
    r = client.post("/rag_query", json={"query": "retries", "topk": 3}, headers=ALICE)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["body.topk"]
    body = {"documents": [{"source": "a.md", "content": "x", "tenant": "bob"}]}
    r = client.post("/documents", content=json.dumps(body), headers={**ALICE, "Content-Type": "application/json"})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["body.documents.0.tenant"]
