"""Bad model files, odd queries, an old database and the background vector fill, through the memory API."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import ApiKeyRegistry
from api.memory.kb import KnowledgeBase
from api.memory.main import create_app
from api.memory.models import MAX_QUERY_CHARS
from api.memory.settings import MemorySettings
from api.memory.store import SCHEMA_VERSION, SQLiteStore

KEY = "memory-faults-key-0123456789abcdef"
HEADERS = {"X-API-KEY": KEY}
CODE = '''
def atomic_write(path, data):
    """Write to a temporary file, then rename it over the target."""
    if not path:
        raise ValueError(f"no path given for {data!r}")
    os.replace(path + ".tmp", path)
'''


def client_for(db: Path, embedding_model: str = "local:all-MiniLM-L6-v2") -> TestClient:
    settings = MemorySettings(memory_db_path=db, embedding_model=embedding_model)
    return TestClient(create_app(settings, ApiKeyRegistry({"tests": KEY})))


def post(client: TestClient, query: str, top_k: int = 3):  # the TestClient's own response type
    return client.post("/rag_query", json={"query": query, "top_k": top_k}, headers=HEADERS)


def check_bm25_only_with_warning(client: TestClient, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    r = client.post("/documents", json={"documents": [{"source": "io.py", "content": CODE}]}, headers=HEADERS)
    assert r.status_code == 200 and r.json()["results"][0]["embedded"] == 0
    r = post(client, "atomic_write")
    assert r.status_code == 200 and r.json()["mode"] == "bm25" and r.json()["results"][0]["name"] == "atomic_write"
    stats = client.get("/stats", headers=HEADERS).json()
    assert stats["embedding_model"] is None and stats["vectors"] == 0
    assert len(stats["warnings"]) == 1 and "BM25 only" in stats["warnings"][0] and reason in stats["warnings"][0]
    assert any("BM25 only" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_missing_model_means_bm25_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with client_for(tmp_path / "kb.db", f"local:{tmp_path / 'gone'}") as client:
        check_bm25_only_with_warning(client, caplog, "unknown local model")
    (tmp_path / "empty").mkdir()
    with client_for(tmp_path / "kb2.db", f"local:{tmp_path / 'empty'}") as client:
        check_bm25_only_with_warning(client, caplog, "config.json")


def test_a_corrupt_model_means_bm25_with_a_warning(
    tmp_path: Path, model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = model_copy / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"\x00" * 1000)
    with client_for(tmp_path / "kb.db", f"local:{model_copy}") as client:
        check_bm25_only_with_warning(client, caplog, "cannot load the weights")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path / "kb.db") as c:
        r = c.post("/documents", json={"documents": [{"source": "io.py", "content": CODE}]}, headers=HEADERS)
        assert r.status_code == 200 and r.json()["results"][0]["embedded"] == 1
        yield c


@pytest.mark.parametrize(
    "query",
    [
        "🙂🙃 数据库 ошибка שגיאה é\u0301 \u200b\ufeff",  # emoji, CJK, Cyrillic, Hebrew, combining, zero-width
        "x" * MAX_QUERY_CHARS,
        " ".join(["why is the retry of the write slow"] * 60)[:MAX_QUERY_CHARS],
        "the of and to is a it",  # only stop words
        "?!... ;;; ((( ))) --- '''",  # only punctuation
        "'''",
        "Error: 'a' 'b' 'c' 1 2 3",  # an error prefix and nothing but values
        "ValueError: " + "'x' " * 400,
        'NEAR(a b) OR "c" AND d* ^e col:f',  # FTS5 syntax is plain text
    ],
)
def test_odd_queries_get_a_sensible_answer(client: TestClient, query: str) -> None:
    r = post(client, query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "hybrid" and len(body["results"]) <= 3


def test_limits_are_a_clear_422(client: TestClient) -> None:
    for body in ({"query": "x" * (MAX_QUERY_CHARS + 1), "top_k": 3}, {"query": " \n\t", "top_k": 3}, {"query": ""}):
        r = client.post("/rag_query", json=body, headers=HEADERS)
        assert r.status_code == 422, body
    top = post(client, "no path given for 'notes.txt'").json()["results"][0]
    assert top["name"] == "atomic_write" and top["literal_rank"] == 1


def test_an_old_database_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    store = SQLiteStore(db)
    KnowledgeBase(store).add("io.py", CODE)
    store.close()
    conn = sqlite3.connect(db)  # what schema 4 had: no literal index
    conn.executescript(
        "DROP TABLE strings_vocab; DROP TABLE strings_fts; UPDATE meta SET value = 4 WHERE key = 'schema_version';"
    )
    conn.close()
    store = SQLiteStore(db)
    assert store._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION
    assert store.document("io.py") is not None  # nothing lost
    kb = KnowledgeBase(store)
    assert kb.search("ValueError: no path given for 'a.txt'", 1).hits[0].literal_rank == 1
    store.close()


def test_serve_embeds_what_has_no_vector_in_the_background(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kb.db")
    kb = KnowledgeBase(store)
    for i in range(40):
        kb.add(f"m{i}.py", CODE.replace("atomic_write", f"atomic_write_{i}"))
    store.close()
    with client_for(tmp_path / "kb.db") as client:
        deadline = time.monotonic() + 120
        while (stats := client.get("/stats", headers=HEADERS).json())["vectors_pending"]:
            assert time.monotonic() < deadline, stats
            assert post(client, "atomic_write_3").status_code == 200  # queries go on meanwhile
            time.sleep(0.2)
        assert stats["vectors_pending"] == 0 and stats["vectors"] == 40 and stats["warnings"] == []
        assert post(client, "rename a temporary file over the target").json()["mode"] == "hybrid"
