"""The encoder of this checkout against another revision's, side by side in one process.

    python -m bench.encoder_speed --against 34967ab      # api/memory/encoder.py of that commit vs the working tree

Both encoders load the same weights (the packaged all-MiniLM-L6-v2) and run with one BLAS thread, as the memory
API runs them. Two figures, each taken alternating the encoders for ``--rounds`` rounds, so a machine whose speed
drifts slows both alike (the ratios are the figures to read): one query's embedding, p50 over every query of both
labelled sets; and indexing throughput, chunks/s over the chunks of the installed httpx package (the encoder's own
thread pool on, as when indexing). Also printed: the lowest cosine between the two encoders' vectors of the same
queries (a speed change must not move them). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.memory import encoder as current  # noqa: E402
from api.memory.chunking import chunk_document  # noqa: E402
from api.memory.embeddings import local_model_path  # noqa: E402
from api.memory.indexer import iter_files, read_text  # noqa: E402
from api.memory.kb import embedding_text  # noqa: E402

SETS = ("rag_queries.json", "rag_queries_click.json")


def encoder_at(revision: str, folder: Path) -> ModuleType:
    """api/memory/encoder.py as it was at ``revision``, imported as its own module."""
    source = subprocess.run(
        ["git", "show", f"{revision}:api/memory/encoder.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = folder / "encoder_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("encoder_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def httpx_chunks() -> list[str]:
    """What indexing embeds for each chunk of the installed httpx package."""
    spec = importlib.util.find_spec("httpx")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    texts = []
    for path in iter_files(root):
        if (read := read_text(path)) is not None:
            source = f"httpx/{path.relative_to(root)}"
            texts += [embedding_text(source, c.name, c.content) for c in chunk_document(source, read[0])]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="a git revision whose encoder to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    queries = [q["query"] for name in SETS for q in json.loads((ROOT / "bench" / name).read_text())["queries"]]
    model = local_model_path("all-MiniLM-L6-v2")
    with tempfile.TemporaryDirectory() as folder:
        then = encoder_at(args.against, Path(folder)).BertEncoder(model)
    now = current.BertEncoder(model)
    cosine = float(np.sum(then.encode(queries) * now.encode(queries), axis=1).min())
    times: dict[str, list[float]] = {"then": [], "now": []}
    with threadpool_limits(1, user_api="blas"):
        for _ in range(args.rounds):
            for query in queries:
                for label, encoder in (("then", then), ("now", now)):
                    started = time.perf_counter()
                    encoder.encode([query])
                    times[label].append(1000 * (time.perf_counter() - started))
        chunks = httpx_chunks()
        rates: dict[str, list[float]] = {"then": [], "now": []}
        for _ in range(args.rounds):
            for label, encoder in (("then", then), ("now", now)):
                started = time.perf_counter()
                encoder.encode(chunks)
                rates[label].append(len(chunks) / (time.perf_counter() - started))
    p50 = {label: statistics.median(values) for label, values in times.items()}
    rate = {label: statistics.median(values) for label, values in rates.items()}
    print(f"{len(queries)} queries and {len(chunks)} httpx chunks, {args.rounds} rounds, one BLAS thread")
    print(f"  one query's embedding p50: {args.against} {p50['then']:.2f} ms, working tree {p50['now']:.2f} ms")
    print(f"  ratio (working tree / {args.against}): {p50['now'] / p50['then']:.3f}")
    print(f"  indexing: {args.against} {rate['then']:.1f} chunks/s, working tree {rate['now']:.1f} chunks/s")
    print(f"  ratio (working tree / {args.against}): {rate['now'] / rate['then']:.3f}")
    print(f"  lowest cosine between the two encoders' vectors: {cosine:.7f}")


if __name__ == "__main__":
    main()
