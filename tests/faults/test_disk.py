"""The disk under the databases full or read-only: the memory API answers 503 saying so, nothing half-written
(the knowledge base passes `PRAGMA integrity_check`), reads go on; the launcher says why it cannot start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import ApiKeyRegistry
from api.memory.kb import KnowledgeBase
from api.memory.main import create_app
from api.memory.settings import MemorySettings
from api.memory.store import SQLiteStore
from testbed.llm_server import GOOD_CODE
from tests.stack.launcher import RunningStack, stack_env
from tests.support import TEST_API_KEY

HEADERS = {"X-API-KEY": TEST_API_KEY}
BIG = "\n\n".join(f'def helper_{i}(x: int) -> int:\n    """Helper {i}."""\n    return x + {i}\n' for i in range(400))


class BrokenDisk(SQLiteStore):
    """A store whose disk breaks once `broken` is set: the connections opened after that see it."""

    broken = False

    def break_disk(self) -> None:
        self.close()  # the next query opens a new connection
        self.broken = True


class FullDisk(BrokenDisk):
    """The file may not grow by a page: what SQLite answers when the disk is full (SQLITE_FULL; `max_page_count`
    is how SQLite's own tests fill a disk)."""

    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        if self.broken and not getattr(self._local, "limited", False):
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            self._local.limited = True
        return conn


class ReadOnlyDisk(BrokenDisk):
    """Writes refused: what SQLite answers on a read-only file or file system (SQLITE_READONLY)."""

    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        if self.broken:
            conn.execute("PRAGMA query_only = ON")
        return conn


@pytest.fixture
def kb_file(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "memory.db"
    store = SQLiteStore(db)
    KnowledgeBase(store).add("examples/arith.py", GOOD_CODE)
    store.close()
    yield db
    conn = sqlite3.connect(db)  # afterwards, with a healthy disk: nothing half-written, everything still there
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT source FROM documents").fetchall() == [("examples/arith.py",)]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("store_class", "said"),
    [(FullDisk, "the disk is full"), (ReadOnlyDisk, "is read-only")],
    ids=["full", "read-only"],
)
def test_the_memory_api_answers_503_saying_why_and_the_knowledge_base_stays_whole(
    kb_file: Path, store_class: type[BrokenDisk], said: str
) -> None:
    settings = MemorySettings(memory_db_path=kb_file, embedding_model="")
    store = store_class(kb_file)
    store.break_disk()  # while the memory API runs
    app = create_app(settings, ApiKeyRegistry({"tests": TEST_API_KEY}), KnowledgeBase(store))
    with TestClient(app) as client:
        r = client.post("/documents", json={"documents": [{"source": "big.py", "content": BIG}]}, headers=HEADERS)
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert said in detail and str(kb_file) in detail and "nothing was written" in detail, detail
        r = client.post("/rag_query", json={"query": "add two integers", "top_k": 2}, headers=HEADERS)
        assert r.status_code == 200 and r.json()["results"][0]["source"] == "examples/arith.py"  # reads go on
    store.close()


def test_the_launcher_says_why_it_cannot_start_when_a_database_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    env = {**stack_env(tmp_path), "TEMPORAL_DB_PATH": str(blocker / "temporal.db")}
    stack = RunningStack.start(tmp_path, env=env)
    try:
        assert stack.proc.wait(timeout=60) == 1
    finally:
        stack.kill_everything()
    output = stack.output()
    assert "Traceback" not in output and "starting temporal" not in output, output
    assert (
        f"[stack] cannot start:\n  Temporal's database {blocker / 'temporal.db'} cannot be written: {blocker} is "
        "not a directory; fix that disk or set TEMPORAL_DB_PATH elsewhere\n"
    ) in output, output
    stack.assert_all_gone()
