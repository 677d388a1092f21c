"""Benchmark of the memory API: retrieval quality, query latency and index throughput.

    python bench/rag_bench.py                 # full: quality on httpx, latency/throughput on the stdlib
    python bench/rag_bench.py --quick         # a few seconds: httpx only (what CI runs)
    python bench/rag_bench.py --embedding-model local:all-MiniLM-L6-v2   # adds hybrid (needs the extra)

Quality: the labelled queries in bench/rag_queries.json over the installed ``httpx`` package source;
recall@3 (an answer in the top 3) and MRR@10, for BM25 alone and, with an embedder, hybrid (RRF).
Latency: p50/p95 of queries in-process and over HTTP (uvicorn on a loopback port) on an index of the
standard library (>= 10,000 chunks). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import socket
import statistics
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import ApiKeyRegistry  # noqa: E402
from api.memory.embeddings import make_embedder  # noqa: E402
from api.memory.indexer import index_path  # noqa: E402
from api.memory.kb import KnowledgeBase  # noqa: E402
from api.memory.main import create_app  # noqa: E402
from api.memory.settings import MemorySettings  # noqa: E402
from api.memory.store import SQLiteStore  # noqa: E402
from api.memory.tokens import tokenize  # noqa: E402

QUERIES = Path(__file__).with_name("rag_queries.json")
BENCH_KEY = "bench-key-0123456789abcdefghij"


def httpx_source() -> Path:
    return Path(httpx.__file__).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(db: Path, corpus: Path, prefix: str, embedding_model: str = "", exclude: tuple[str, ...] = ()):
    kb = KnowledgeBase(SQLiteStore(db), make_embedder(embedding_model))
    summary = index_path(kb, corpus, source_prefix=prefix, exclude=exclude)
    return kb, summary


def evaluate(kb: KnowledgeBase, queries: list[dict], verbose: bool = False) -> dict[str, float]:
    """recall@3 and MRR@10, overall and for the queries that name no identifier of their answer.

    With ``verbose``, print each miss (not in the top 3)."""
    ranks: list[tuple[int | None, bool]] = []
    for item in queries:
        answers = {(src, name) for src, name in item["answers"]}
        # "names an identifier": the query spells out the answer's own name (any case or separator style).
        query_words = set(tokenize(item["query"]))
        names_identifier = any(tokenize(name.split(".")[-1])[-1:][0] in query_words for _, name in answers)
        hits = kb.search(item["query"], 10).hits
        rank = next(
            (i for i, h in enumerate(hits, 1) if (h.chunk.source, h.chunk.name.split(" (part")[0]) in answers),
            None,
        )
        ranks.append((rank, names_identifier))
        if verbose and (rank is None or rank > 3):
            top = ", ".join(f"{h.chunk.source}:{h.chunk.name}" for h in hits[:3])
            print(f"    miss (rank {rank}): {item['query']!r} -> {top}")

    def scores(subset: list[int | None]) -> tuple[float, float]:
        if not subset:
            return float("nan"), float("nan")
        recall = sum(1 for r in subset if r is not None and r <= 3) / len(subset)
        mrr = sum(1 / r for r in subset if r is not None) / len(subset)
        return recall, mrr

    all_r, all_m = scores([r for r, _ in ranks])
    plain_r, plain_m = scores([r for r, named in ranks if not named])
    return {
        "recall@3": all_r,
        "mrr@10": all_m,
        "recall@3 (no identifier named)": plain_r,
        "mrr@10 (no identifier named)": plain_m,
        "queries": len(ranks),
        "queries naming no identifier": sum(1 for _, named in ranks if not named),
    }


def latency_queries(kb: KnowledgeBase, labelled: list[dict], n: int, seed: int = 7) -> list[str]:
    """The labelled questions plus identifier and two-word queries drawn from the index itself."""
    rng = random.Random(seed)
    store = kb.store
    assert isinstance(store, SQLiteStore)
    conn = store._conn()
    names = [r[0] for r in conn.execute("SELECT name FROM chunks WHERE name != '' ORDER BY random() LIMIT 2000")]
    words = [w for name in names for w in tokenize(name) if len(w) > 3]
    out = [q["query"] for q in labelled]
    while len(out) < n:
        out.append(rng.choice(names) if rng.random() < 0.5 else f"{rng.choice(words)} {rng.choice(words)}")
    rng.shuffle(out)
    return out[:n]


def time_in_process(kb: KnowledgeBase, queries: list[str], top_k: int = 5) -> list[float]:
    for q in queries[:20]:  # warm the page cache
        kb.search(q, top_k)
    out = []
    for q in queries:
        t = time.perf_counter()
        kb.search(q, top_k)
        out.append(1000 * (time.perf_counter() - t))
    return out


def time_http(db: Path, embedding_model: str, queries: list[str], top_k: int = 5) -> list[float]:
    settings = MemorySettings(memory_db_path=db, embedding_model=embedding_model)
    app = create_app(settings, ApiKeyRegistry({"bench": BENCH_KEY}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark server did not start")
        time.sleep(0.05)
    out = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-KEY": BENCH_KEY}, timeout=30) as c:
            for q in queries[:20]:
                c.post("/rag_query", json={"query": q, "top_k": top_k}).raise_for_status()
            for q in queries:
                t = time.perf_counter()
                c.post("/rag_query", json={"query": q, "top_k": top_k}).raise_for_status()
                out.append(1000 * (time.perf_counter() - t))
    finally:
        server.should_exit = True
        thread.join(10)
    return out


def report_latency(label: str, values: list[float]) -> None:
    print(
        f"  {label:<34} n={len(values):<5} p50 {statistics.median(values):7.2f} ms   "
        f"p95 {percentile(values, 0.95):7.2f} ms   max {max(values):7.2f} ms"
    )


def report_index(label: str, summary, kb: KnowledgeBase) -> None:
    s = summary
    chunks = kb.store.stats(kb.model).chunks
    print(
        f"  {label:<34} {s.files} files, {chunks} chunks in {s.seconds:.1f} s: "
        f"{s.files / s.seconds:.0f} files/s, {chunks / s.seconds:.0f} chunks/s"
        + (f", {s.embedded} chunks embedded" if s.embedded else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="httpx only, fewer queries (seconds)")
    parser.add_argument("--embedding-model", default=os.environ.get("EMBEDDING_MODEL", ""))
    parser.add_argument("--latency-corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--queries", type=int, default=500, help="latency sample size")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the queries missed at 3")
    parser.add_argument("--workdir", type=Path, help="keep the databases here (default: a temp dir, removed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    labelled = json.loads(QUERIES.read_text())["queries"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.db*"):
        old.unlink()
    n_queries = 100 if args.quick else args.queries

    print(f"corpus for quality: {httpx_source()} (httpx {httpx.__version__}); {len(labelled)} labelled queries")
    kb, summary = build(workdir / "httpx-bm25.db", httpx_source(), "httpx/")
    results = {"bm25": evaluate(kb, labelled, args.verbose)}
    print("\nindex throughput")
    report_index("httpx, BM25 only", summary, kb)
    hybrid_kb = None
    if args.embedding_model:
        hybrid_kb, hsummary = build(workdir / "httpx-hybrid.db", httpx_source(), "httpx/", args.embedding_model)
        report_index(f"httpx, {args.embedding_model}", hsummary, hybrid_kb)
        results["hybrid"] = evaluate(hybrid_kb, labelled, args.verbose)

    if args.quick:
        latency_kb, latency_db = kb, workdir / "httpx-bm25.db"
    else:
        latency_db = workdir / "stdlib.db"
        latency_kb, lsummary = build(latency_db, args.latency_corpus, "stdlib/", exclude=("test", "tests"))
        report_index(f"{args.latency_corpus.name} stdlib minus tests", lsummary, latency_kb)

    print("\nquality (httpx)")
    for mode, r in results.items():
        print(
            f"  {mode:<7} recall@3 {r['recall@3']:.3f}   MRR@10 {r['mrr@10']:.3f}   "
            f"| {r['queries naming no identifier']} queries naming no identifier: "
            f"recall@3 {r['recall@3 (no identifier named)']:.3f}  MRR@10 {r['mrr@10 (no identifier named)']:.3f}"
        )

    chunks = latency_kb.store.stats(None).chunks
    queries = latency_queries(latency_kb, labelled, n_queries)
    print(f"\nquery latency, top_k=5, index of {chunks} chunks")
    report_latency("BM25 in-process", time_in_process(latency_kb, queries))
    report_latency("BM25 over HTTP (keep-alive)", time_http(latency_db, "", queries))
    if hybrid_kb is not None:
        hq = latency_queries(hybrid_kb, labelled, min(n_queries, 200))
        hybrid_chunks = hybrid_kb.store.stats(None).chunks
        report_latency(f"hybrid in-process ({hybrid_chunks} chunks)", time_in_process(hybrid_kb, hq))
    for k in (kb, hybrid_kb, latency_kb):
        if k is not None:
            k.store.close()
    if args.workdir:
        print(f"\ndatabases kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
