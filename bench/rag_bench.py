"""Benchmark of the memory API: retrieval quality, embedding speed, query latency and index throughput.

    python bench/rag_bench.py                 # full: both labelled sets, latency on the stdlib (minutes)
    python bench/rag_bench.py --quick         # both labelled sets, latency on their small index (what CI runs)
    python bench/rag_bench.py --split tune    # only the queries one may look at while tuning
    python bench/rag_bench.py --embedding-model ''   # BM25 only

Quality: the labelled sets bench/rag_queries.json (httpx) and bench/rag_queries_click.json (click), each over
the source of the installed package. A query hits when one of its answer chunks (file + qualified name) is
returned; recall@3 and MRR@10 per set, per part (``tune``: looked at while tuning; ``held-out``: never) and per
kind (natural, identifier, behaviour, error), for BM25 alone and hybrid (the ``make run`` default).
Speed: embedding throughput (chunks/s, while indexing) and the p50 of one query's embedding; query latency
p50/p95 in-process and over HTTP (uvicorn on a loopback port), BM25 on the standard library (>= 10,000 chunks)
and hybrid on 10,000 chunks of it. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.memory.embeddings import make_embedder  # noqa: E402
from api.memory.indexer import IndexSummary, index_path, iter_files, read_text  # noqa: E402
from api.memory.kb import KnowledgeBase, embedding_text  # noqa: E402
from api.memory.settings import MemorySettings  # noqa: E402
from api.memory.store import SQLiteStore  # noqa: E402
from api.memory.tokens import tokenize  # noqa: E402
from bench.service import service  # noqa: E402
from testbed.server import free_port  # noqa: E402

SETS = {
    "httpx": Path(__file__).with_name("rag_queries.json"),
    "click": Path(__file__).with_name("rag_queries_click.json"),
}
KINDS = ("natural", "identifier", "behaviour", "error")
PARTS = ("tune", "held-out")
BENCH_KEY = "bench-key-0123456789abcdefghij"
HYBRID_CHUNKS = 10_000  # size of the index the hybrid HTTP latency is measured on (full run)


@dataclass
class LabelledSet:
    name: str
    package: str
    version: str
    source_prefix: str
    queries: list[dict]

    @classmethod
    def load(cls, name: str) -> LabelledSet:
        data = json.loads(SETS[name].read_text())
        return cls(name, data["package"], data["version"], data["source_prefix"], data["queries"])

    def source(self) -> Path:
        module = importlib.import_module(self.package)
        return Path(module.__file__ or "").parent

    def installed_version(self) -> str:
        return importlib.metadata.version(self.package)


@dataclass
class Ranks:
    """The rank of the first answer of each query (None: not in the top 10), with its kind and part."""

    rows: list[tuple[str, str, int | None]] = field(default_factory=list)

    def scores(self, kind: str | None = None, part: str | None = None) -> tuple[int, float, float]:
        ranks = [r for k, p, r in self.rows if kind in (None, k) and part in (None, p)]
        if not ranks:
            return 0, float("nan"), float("nan")
        recall = sum(1 for r in ranks if r is not None and r <= 3) / len(ranks)
        mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
        return len(ranks), recall, mrr


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def evaluate(kb: KnowledgeBase, queries: list[dict], verbose: bool = False) -> Ranks:
    """Rank of the first answer of every query in the top 10; with ``verbose``, print each miss at 3."""
    out = Ranks()
    for item in queries:
        answers = {(src, name) for src, name in item["answers"]}
        hits = kb.search(item["query"], 10).hits
        rank = next(
            (i for i, h in enumerate(hits, 1) if (h.chunk.source, h.chunk.name.split(" (part")[0]) in answers),
            None,
        )
        out.rows.append((item["kind"], item["split"], rank))
        if verbose and (rank is None or rank > 3):
            top = ", ".join(f"{h.chunk.source}:{h.chunk.name}" for h in hits[:3])
            print(f"    miss [{item['kind']}, rank {rank}]: {item['query']!r} -> {top}")
    return out


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


@contextmanager
def served(db: Path, embedding_model: str) -> Iterator[httpx.Client]:
    """``python -m api.memory serve`` over ``db`` on a loopback port, as deployed (its own process: a server
    thread in this process would share the client's GIL), and a keep-alive client for it; stopped on exit."""
    port = free_port()
    env = {**os.environ, "ORCHESTRATOR_API_KEY": BENCH_KEY, "EMBEDDING_MODEL": embedding_model}
    env.pop("ORCHESTRATOR_API_KEYS", None)
    command = [sys.executable, "-m", "api.memory", "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    log_path = db.with_suffix(".serve.log")
    with (
        log_path.open("w") as log,
        service(command, env, f"{url}/health", f"the memory API (log: {log_path})", ROOT, log),
        httpx.Client(base_url=url, headers={"X-API-KEY": BENCH_KEY}, timeout=30) as client,
    ):
        yield client


def time_http(db: Path, embedding_model: str, queries: list[str], top_k: int = 5) -> tuple[list[float], str]:
    """Per-query latency over HTTP, and the mode the server answered in."""
    out = []
    with served(db, embedding_model) as c:
        for q in queries[:20]:
            c.post("/rag_query", json={"query": q, "top_k": top_k}).raise_for_status()
        mode = ""
        for q in queries:
            t = time.perf_counter()
            r = c.post("/rag_query", json={"query": q, "top_k": top_k})
            out.append(1000 * (time.perf_counter() - t))
            r.raise_for_status()
            mode = r.json()["mode"]
    return out, mode


def time_query_embedding(kb: KnowledgeBase, queries: list[str]) -> list[float]:
    assert kb.embedder is not None
    for q in queries[:10]:
        kb.embedder.embed([q])
    out = []
    for q in queries:
        t = time.perf_counter()
        kb.embedder.embed([q])
        out.append(1000 * (time.perf_counter() - t))
    return out


def compare_runtimes(model: str, kb: KnowledgeBase) -> None:
    """Where the embeddings extra is installed: the same chunks embedded by numpy and by torch, side by side."""
    store = kb.store
    assert isinstance(store, SQLiteStore)
    rows = store._conn().execute("SELECT source, name, content FROM chunks ORDER BY id").fetchall()
    texts = [embedding_text(*row) for row in rows]
    rates = {}
    for runtime in ("numpy", "torch"):
        embedder = make_embedder(model, runtime)
        assert embedder is not None
        embedder.embed(texts[:8])  # warm up
        started = time.perf_counter()
        embedder.embed(texts)
        rates[runtime] = len(texts) / (time.perf_counter() - started)
        print(f"  {runtime + ' runtime':<44} {len(texts)} chunks: {rates[runtime]:.1f} chunks/s")
    print(f"  {'numpy / torch':<44} {rates['numpy'] / rates['torch']:.2f}x")


def report_latency(label: str, values: list[float]) -> None:
    print(
        f"  {label:<44} n={len(values):<5} p50 {statistics.median(values):7.2f} ms   "
        f"p95 {percentile(values, 0.95):7.2f} ms   max {max(values):7.2f} ms"
    )


def report_index(label: str, s: IndexSummary, chunks: int) -> None:
    lexical = s.seconds - s.embedding_seconds
    line = (
        f"  {label:<44} {s.files} files, {chunks} chunks: stored in {lexical:.1f} s ({chunks / lexical:.0f} chunks/s)"
    )
    if s.embedded:
        line += (
            f"; {s.embedded} embedded in {s.embedding_seconds:.1f} s: {s.embedded / s.embedding_seconds:.1f} chunks/s"
        )
    print(line)


def report_quality(results: dict[str, dict[str, Ranks]], parts: list[str]) -> None:
    modes = list(next(iter(results.values())))
    head = "".join(f"{m:>22}" for m in modes)
    print(f"\nquality: recall@3 / MRR@10 (queries)\n  {'set':<7}{'part':<10}{'kind':<12}{'n':>4}{head}")
    for name, by_mode in results.items():
        for part in [*parts, None]:
            if part is None and len(parts) == 1:
                continue
            for kind in [*KINDS, None]:
                n, *_ = by_mode[modes[0]].scores(kind, part)
                if not n:
                    continue
                cells = "".join("{:>13.3f} / {:.3f}".format(*by_mode[m].scores(kind, part)[1:]) for m in modes)
                label = kind or "all"
                print(f"  {name:<7}{part or 'both':<10}{label:<12}{n:>4}{cells}")
            print()


def stdlib_sample(root: Path, chunks: int) -> list[Path]:
    """Files of the standard library (minus tests), in order, until they hold about ``chunks`` chunks."""
    from api.memory.chunking import chunk_document

    out, total = [], 0
    for path in iter_files(root, exclude=("test", "tests")):
        read = read_text(path)
        if read is None:
            continue
        out.append(path)
        total += len(chunk_document(path.name, read[0]))
        if total >= chunks:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="latency on the labelled sets' index only (a minute)")
    parser.add_argument("--embedding-model", default=MemorySettings().embedding_model)
    parser.add_argument("--split", choices=["all", *PARTS], default="all", help="which part of the sets to run")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument("--latency-corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--queries", type=int, default=500, help="latency sample size")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the queries missed at 3")
    parser.add_argument("--workdir", type=Path, help="keep the databases here (default: a temp dir, removed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.db*"):
        old.unlink()
    parts = list(PARTS) if args.split == "all" else [args.split]
    n_queries = 100 if args.quick else args.queries
    model = args.embedding_model
    kbs: list[KnowledgeBase] = []
    try:
        print("index throughput")
        results: dict[str, dict[str, Ranks]] = {}
        all_queries: list[dict] = []
        set_dbs: list[Path] = []
        for name in args.sets.split(","):
            labelled = LabelledSet.load(name)
            if labelled.installed_version() != labelled.version:
                installed = labelled.installed_version()
                print(f"  note: {name} {installed} is installed, the set was written for {labelled.version}")
            queries = [q for q in labelled.queries if q["split"] in parts]
            all_queries += queries
            db = workdir / f"{name}.db"
            set_dbs.append(db)
            kb = KnowledgeBase(SQLiteStore(db), make_embedder(model))
            kbs.append(kb)
            summary = index_path(kb, labelled.source(), source_prefix=labelled.source_prefix)
            report_index(
                f"{name} {labelled.installed_version()}, {model or 'BM25 only'}", summary, kb.store.stats(None).chunks
            )
            results[name] = {"BM25": evaluate(KnowledgeBase(kb.store), queries, args.verbose)}
            if kb.embedder is not None:
                results[name]["hybrid"] = evaluate(kb, queries, args.verbose)
        report_quality(results, parts)

        hybrid_kb = kbs[0] if kbs and kbs[0].embedder is not None else None
        if hybrid_kb is not None:
            print(f"embedding ({model})")
            if model.startswith("local:") and importlib.util.find_spec("sentence_transformers"):
                compare_runtimes(model, hybrid_kb)
            report_latency(
                "one query's embedding", time_query_embedding(hybrid_kb, [q["query"] for q in all_queries] * 3)
            )

        if args.quick:
            latency_db, latency_kb = set_dbs[0], KnowledgeBase(kbs[0].store)  # BM25 alone over the same store
        else:
            latency_db = workdir / "stdlib.db"
            latency_kb = KnowledgeBase(SQLiteStore(latency_db))
            kbs.append(latency_kb)
            lsummary = index_path(latency_kb, args.latency_corpus, source_prefix="stdlib/", exclude=("test", "tests"))
            report_index(
                f"{args.latency_corpus.name} stdlib minus tests, BM25", lsummary, latency_kb.store.stats(None).chunks
            )
        chunks = latency_kb.store.stats(None).chunks
        sample = latency_queries(latency_kb, all_queries, n_queries)
        print("\nquery latency, top_k=5")
        report_latency(f"BM25 in-process, {chunks} chunks", time_in_process(latency_kb, sample))
        values, _ = time_http(latency_db, "", sample)
        report_latency(f"BM25 over HTTP (keep-alive), {chunks} chunks", values)
        if hybrid_kb is not None:
            if args.quick:
                hybrid_db, hkb = latency_db, hybrid_kb
            else:
                hybrid_db = workdir / "stdlib-hybrid.db"
                hkb = KnowledgeBase(SQLiteStore(hybrid_db), hybrid_kb.embedder)
                kbs.append(hkb)
                started = time.perf_counter()
                for path in stdlib_sample(args.latency_corpus, HYBRID_CHUNKS):
                    read = read_text(path)
                    assert read is not None
                    hkb.add("stdlib/" + path.relative_to(args.latency_corpus).as_posix(), read[0], embed=False)
                stored = time.perf_counter() - started
                started = time.perf_counter()
                embedded = hkb.embed_missing()
                took = time.perf_counter() - started
                print(
                    f"  (index for hybrid: {hkb.store.stats(None).chunks} stdlib chunks stored in {stored:.1f} s, "
                    f"{embedded} embedded in {took:.1f} s: {embedded / took:.1f} chunks/s)"
                )
            hchunks = hkb.store.stats(None).chunks
            hq = latency_queries(hkb, all_queries, n_queries)
            report_latency(f"hybrid in-process, {hchunks} chunks", time_in_process(hkb, hq))
            values, mode = time_http(hybrid_db, model, hq)
            assert mode == "hybrid", mode
            report_latency(f"hybrid over HTTP (keep-alive), {hchunks} chunks", values)
    finally:
        for k in kbs:
            k.store.close()
        if args.workdir:
            print(f"\ndatabases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
