"""The memory API over HTTP: contract, auth, bad input, the OpenAI embedding path and the RAG activity."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr
from temporalio.testing import ActivityEnvironment

from activities.config import WorkerSettings
from activities.rag import RagActivities
from api.auth import ApiKeyConfigError, ApiKeyRegistry
from api.memory.main import create_app
from api.memory.settings import MemorySettings
from api.memory.tokens import tokenize
from testbed.server import free_port
from workflows.models import RagQuery

KEY = "memory-test-key-0123456789abcdef"
OTHER_KEY = "memory-other-key-fedcba9876543210"
REGISTRY = ApiKeyRegistry({"alice": KEY, "bob": OTHER_KEY})
HEADERS = {"X-API-KEY": KEY}

CODE = '''
def atomic_write(path, data):
    """Write to a temporary file, then rename it over the target."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def parse_iso_duration(text):
    """Seconds in an ISO-8601 duration."""
    return 0
'''


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# -- a fake OpenAI embeddings endpoint ---------------------------------------------------------

CONCEPTS = [
    {"atomic", "temporary", "tmp", "rename", "replace", "half", "written", "partial", "crash"},
    {"duration", "iso", "seconds", "period", "interval"},
]


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str] | str
    encoding_format: str | None = None


def fake_openai_app(state: dict[str, object]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> dict[str, object]:
        if state.get("fail"):
            raise HTTPException(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        texts = [body.input] if isinstance(body.input, str) else body.input
        state["calls"] = int(state.get("calls", 0)) + 1  # type: ignore[call-overload]
        state["texts"] = int(state.get("texts", 0)) + len(texts)  # type: ignore[call-overload]
        data = []
        for i, text in enumerate(texts):
            words = set(tokenize(text))
            data.append({"object": "embedding", "index": i, "embedding": [len(words & c) + 0.01 for c in CONCEPTS]})
        return {"object": "list", "data": data, "model": body.model, "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    return app


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[tuple[str, dict[str, object]]]:
    state: dict[str, object] = {}
    with ServerThread(fake_openai_app(state)) as server:
        yield server.url + "/v1", state


# -- app fixtures ------------------------------------------------------------------------------


def make_client(tmp_path: Path, embedding_model: str = "") -> TestClient:
    settings = MemorySettings(memory_db_path=tmp_path / "kb.db", embedding_model=embedding_model)
    return TestClient(create_app(settings, REGISTRY))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


def add(client: TestClient, source: str, content: str):  # the TestClient's own response type
    return client.post("/documents", json={"documents": [{"source": source, "content": content}]}, headers=HEADERS)


# -- contract ----------------------------------------------------------------------------------


def test_rag_query_contract(client: TestClient) -> None:
    r = add(client, "pkg/io.py", CODE)
    assert r.status_code == 200
    assert r.json()["results"][0]["status"] == "added"
    r = client.post("/rag_query", json={"query": "ParseISODuration", "top_k": 3}, headers=HEADERS)
    assert r.status_code == 200
    body = r.json()
    top = body["results"][0]
    assert {"content", "source", "score", "start_line", "end_line", "name"} <= top.keys()
    assert top["source"] == "pkg/io.py" and top["name"] == "parse_iso_duration"
    assert top["start_line"] == 10 and "ISO-8601" in top["content"]
    assert body["mode"] == "bm25" and len(body["results"]) <= 3


def test_documents_are_idempotent_and_deletable(client: TestClient) -> None:
    assert add(client, "a.md", "alpha paragraph").json()["results"][0]["status"] == "added"
    assert add(client, "a.md", "alpha paragraph").json()["results"][0]["status"] == "unchanged"
    assert add(client, "a.md", "beta paragraph").json()["results"][0]["status"] == "replaced"
    stats = client.get("/stats", headers=HEADERS).json()
    assert stats["documents"] == 1 and stats["chunks"] == 1 and stats["embedding_model"] is None
    r = client.delete("/documents", params={"source": "a.md"}, headers=HEADERS)
    assert r.status_code == 200 and r.json() == {"source": "a.md", "deleted_chunks": 1}
    assert client.delete("/documents", params={"source": "a.md"}, headers=HEADERS).status_code == 404


def test_auth(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert add(client, "kept.md", "kept paragraph").status_code == 200
    refused = {"detail": "missing or unknown X-API-KEY header"}
    for headers in ({}, {"X-API-KEY": "wrong-key-0123456789abcdef"}, {"X-API-KEY": ""}):
        r = client.post("/rag_query", json={"query": "x", "top_k": 1}, headers=headers)
        assert (r.status_code, r.json()) == (401, refused)
        r = client.get("/stats", headers=headers)
        assert (r.status_code, r.json()) == (401, refused)
        r = client.post("/documents", json={"documents": [{"source": "evil.md", "content": "x"}]}, headers=headers)
        assert (r.status_code, r.json()) == (401, refused)
        r = client.delete("/documents", params={"source": "kept.md"}, headers=headers)
        assert (r.status_code, r.json()) == (401, refused)
    stats = client.get("/stats", headers={"X-API-KEY": OTHER_KEY})  # any tenant
    assert stats.status_code == 200 and stats.json()["documents"] == 1  # nothing added, nothing deleted


def test_refuses_to_start_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ORCHESTRATOR_API_KEY", "ORCHESTRATOR_API_KEYS", "ORCHESTRATOR_API_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ApiKeyConfigError):
        create_app(MemorySettings(memory_db_path=tmp_path / "kb.db"))


@pytest.mark.parametrize(
    "body",
    [
        {"query": "", "top_k": 3},
        {"query": "   ", "top_k": 3},
        {"query": "x" * 2001, "top_k": 3},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": -1},
        {"query": "x", "top_k": 51},
        {"query": "x", "top_k": 10**12},
        {"query": 5, "top_k": 3},
        {"top_k": 3},
    ],
)
def test_bad_queries_are_422(client: TestClient, body: dict[str, object]) -> None:
    r = client.post("/rag_query", json=body, headers=HEADERS)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("query", ['"', "*", "NEAR(a b)", "col:x", 'parse_iso" OR *', "(((", "!!!", "AND"])
def test_fts_syntax_in_queries_never_errors(client: TestClient, query: str) -> None:
    add(client, "pkg/io.py", CODE)
    r = client.post("/rag_query", json={"query": query, "top_k": 5}, headers=HEADERS)
    assert r.status_code == 200, r.text


def test_lone_surrogates_are_a_clean_4xx(client: TestClient) -> None:
    # JSON allows "\\ud800" but UTF-8 does not; the request is refused cleanly, never a 500.
    raw = b'{"documents": [{"source": "s\\ud800.md", "content": "odd \\udfff text"}]}'
    assert client.post("/documents", content=raw, headers=HEADERS).status_code == 422
    raw = b'{"query": "odd \\ud800", "top_k": 5}'
    assert client.post("/rag_query", content=raw, headers=HEADERS).status_code == 422


def test_bad_documents_are_422(client: TestClient) -> None:
    assert client.post("/documents", json={"documents": []}, headers=HEADERS).status_code == 422
    assert (
        client.post("/documents", json={"documents": [{"source": "", "content": "x"}]}, headers=HEADERS).status_code
        == 422
    )
    assert client.post("/documents", content=b"\xff\xfe not json", headers=HEADERS).status_code == 422
    assert client.delete("/documents", headers=HEADERS).status_code == 422


def test_corrupt_database_is_503_not_500(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        add(c, "a.md", "alpha")
        db = tmp_path / "kb.db"
        c.app.state.kb.store.close()  # type: ignore[attr-defined]
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(db) + suffix)
            if p.exists():
                p.write_bytes(b"garbage" * 2000)
        r = c.post("/rag_query", json={"query": "alpha", "top_k": 1}, headers=HEADERS)
        assert r.status_code == 503 and "corrupt" in r.json()["detail"]
    with pytest.raises(Exception, match="corrupt"), make_client(tmp_path):
        pass


def test_locked_database_is_503_with_retry_after(tmp_path: Path) -> None:
    settings = MemorySettings(memory_db_path=tmp_path / "kb.db", memory_busy_timeout=0.2)
    with TestClient(create_app(settings, REGISTRY)) as c:
        add(c, "a.md", "alpha")
        other = sqlite3.connect(tmp_path / "kb.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            r = add(c, "b.md", "beta")
            assert r.status_code == 503 and r.headers["retry-after"] == "1" and "locked" in r.json()["detail"]
            r = c.post("/rag_query", json={"query": "alpha", "top_k": 1}, headers=HEADERS)
            assert r.status_code == 200 and r.json()["results"]  # readers are not blocked
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert add(c, "b.md", "beta").json()["results"][0]["status"] == "added"


# -- embeddings through the real openai SDK against a fake server ------------------------------


def test_hybrid_with_openai_embeddings(
    tmp_path: Path, fake_openai: tuple[str, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, state = fake_openai
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-test")
    state.clear()
    with make_client(tmp_path, "openai:text-embedding-3-small") as c:
        add(c, "pkg/io.py", CODE)
        add(c, "notes.md", "Release notes: nothing about files here.")
        embedded = state["texts"]
        assert add(c, "pkg/io.py", CODE).json()["results"][0]["embedded"] == 0
        assert state["texts"] == embedded  # unchanged: nothing re-embedded
        r = c.post("/rag_query", json={"query": "survive a crash mid-save", "top_k": 3}, headers=HEADERS)
        body = r.json()
        assert body["mode"] == "hybrid"
        assert body["results"][0]["name"] == "atomic_write" and body["results"][0]["bm25_rank"] is None
        assert c.get("/stats", headers=HEADERS).json()["vectors"] >= 3
        state["fail"] = True  # the embeddings service breaks: queries fall back to BM25, writes keep documents
        r = c.post("/rag_query", json={"query": "parse_iso_duration", "top_k": 3}, headers=HEADERS)
        assert r.status_code == 200 and r.json()["mode"] == "bm25" and r.json()["warnings"]
        r = add(c, "new.md", "a brand new document about durations")
        assert r.status_code == 200 and r.json()["results"][0]["warning"]
        found = c.post("/rag_query", json={"query": "brand new", "top_k": 1}, headers=HEADERS).json()
        assert found["results"][0]["source"] == "new.md"
        state["fail"] = False


# -- the worker's RAG activity against the real memory API -------------------------------------


async def test_rag_activity_against_memory_api(tmp_path: Path) -> None:
    settings = MemorySettings(memory_db_path=tmp_path / "kb.db")
    with TestClient(create_app(settings, REGISTRY)) as c:
        add(c, "pkg/io.py", CODE)
    with ServerThread(create_app(settings, REGISTRY)) as server:
        worker_settings = WorkerSettings(memory_api_url=server.url, memory_api_key=SecretStr(KEY))
        acts = RagActivities(worker_settings)
        try:
            result = await ActivityEnvironment().run(
                acts.search_knowledge, RagQuery(query="parse iso duration", top_k=2)
            )
        finally:
            await acts.aclose()
    assert result.results and result.results[0].source == "pkg/io.py"
    assert "def parse_iso_duration" in result.results[0].content
