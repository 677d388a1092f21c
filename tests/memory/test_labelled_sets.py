"""The benchmark's labelled sets hold what they claim: real answers in the installed packages, every kind in both
parts, behaviour questions that share no word with the names of their answers."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path

import pytest

from api.memory.chunking import chunk_document
from api.memory.indexer import iter_files, read_text
from api.memory.messages import parse_message
from api.memory.tokens import tokenize

BENCH = Path(__file__).resolve().parents[2] / "bench"
SETS = sorted(BENCH.glob("rag_queries*.json"))
KINDS = {"natural", "identifier", "behaviour", "error"}


@pytest.mark.parametrize("path", SETS, ids=[p.stem for p in SETS])
def test_labelled_set(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    queries = data["queries"]
    assert len(queries) >= 40
    parts = Counter((q["kind"], q["split"]) for q in queries)
    assert {kind for kind, _ in parts} == KINDS
    for kind in ("behaviour", "error"):
        assert parts[(kind, "held-out")] >= 5 and parts[(kind, "tune")] >= 5, parts
    root = Path(importlib.import_module(data["package"]).__file__ or "").parent
    chunks = set()
    for file in iter_files(root):
        read = read_text(file)
        if read is not None:
            source = data["source_prefix"] + file.relative_to(root).as_posix()
            chunks |= {(source, c.name.split(" (part")[0]) for c in chunk_document(source, read[0])}
    for q in queries:
        assert q["split"] in {"tune", "held-out"}
        for source, name in q["answers"]:
            assert (source, name) in chunks, f"{q['query']!r}: {source}:{name} is not a chunk of the installed package"
        if q["kind"] == "behaviour":
            shared = set(tokenize(q["query"])) & {t for _, name in q["answers"] for t in tokenize(name)}
            assert not shared, f"{q['query']!r} shares {shared} with its answers' names"
        if q["kind"] == "error":
            assert parse_message(q["query"]) is not None, q["query"]
