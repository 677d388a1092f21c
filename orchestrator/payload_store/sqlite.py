"""The payload store's chunks in one SQLite file (`PAYLOAD_STORE=path`, driver `local`)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from orchestrator.codec import EncryptionCodec
from orchestrator.payload_store._driver import ChunkBackend, ChunkStorageDriver

DRIVER_NAME = "local"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    task TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (task, key)
) WITHOUT ROWID;
"""


class SqliteChunkBackend(ChunkBackend):
    """Chunks in one SQLite file (table `chunks`, key `(task, key)`), shared by every process of one machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    def _existing(self, task: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                batch = list(keys[start : start + 500])
                marks = ",".join("?" * len(batch))
                rows = db.execute(f"SELECT key FROM chunks WHERE task = ? AND key IN ({marks})", [task, *batch])
                found.update(row[0] for row in rows)
        return found

    def _write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        with self._connect() as db, db:  # one transaction: the manifest and its chunks, or nothing
            db.executemany(
                "INSERT OR IGNORE INTO chunks (task, key, value, created) VALUES (?, ?, ?, ?)",
                [(task, key, value, now) for key, value in values],
            )

    def _read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        with self._connect() as db:
            out = []
            for key in keys:
                row = db.execute("SELECT value FROM chunks WHERE task = ? AND key = ?", (task, key)).fetchone()
                out.append(None if row is None else bytes(row[0]))
            return out

    def _tasks(self) -> dict[str, float]:
        with self._connect() as db:
            return dict(db.execute("SELECT task, MAX(created) FROM chunks GROUP BY task").fetchall())

    def _task_bytes(self, task: str) -> int:
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM chunks WHERE task = ?", (task,)).fetchone()
        return int(row[0])

    def _delete_task(self, task: str) -> int:
        freed = self._task_bytes(task)
        with self._connect() as db, db:
            db.execute("DELETE FROM chunks WHERE task = ?", (task,))
        return freed

    async def existing(self, task: str, keys: Sequence[str]) -> set[str]:
        return await asyncio.to_thread(self._existing, task, keys)

    async def write(self, task: str, values: Sequence[tuple[str, bytes]]) -> None:
        await asyncio.to_thread(self._write, task, values)

    async def read_many(self, task: str, keys: Sequence[str]) -> list[bytes | None]:
        return await asyncio.to_thread(self._read_many, task, keys)

    async def tasks(self) -> dict[str, float]:
        return await asyncio.to_thread(self._tasks)

    async def task_bytes(self, task: str) -> int:
        return await asyncio.to_thread(self._task_bytes, task)

    async def delete_task(self, task: str) -> int:
        return await asyncio.to_thread(self._delete_task, task)


class SqliteStorageDriver(ChunkStorageDriver):
    """The local driver (name `local`, as existing histories name it): chunks in one SQLite file."""

    def __init__(self, path: str | Path, codec: EncryptionCodec | None = None, name: str = DRIVER_NAME) -> None:
        self.path = Path(path)
        super().__init__(SqliteChunkBackend(self.path), codec, name, "coding-orchestrator.sqlite-chunks")
