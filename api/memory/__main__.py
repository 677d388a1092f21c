"""Command line of the memory API.

    python -m api.memory serve                      # the HTTP API on MEMORY_API_HOST:MEMORY_API_PORT
    python -m api.memory index PATH [--source-prefix P] [--prune] [--no-embed]
    python -m api.memory query "how are retries handled" [--top-k 5] [--json] [--tenant NAME]
    python -m api.memory stats

`index` writes the shared base every tenant searches. The database is MEMORY_DB_PATH (or --db); vectors are made
by EMBEDDING_MODEL (default local:all-MiniLM-L6-v2, empty for BM25 only).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from api.auth import ApiKeyConfigError, ApiKeyRegistry, trusted_proxies

from .embeddings import EmbeddingError
from .settings import MemorySettings
from .store import StoreError

# An idle connection stays open this long (uvicorn's default: 5 s): longer than the worker's knowledge-search client
# keeps one (httpx: 5 s), so the client always closes it first, and a query is never sent on a connection the server
# is closing (a "Server disconnected" failure, then a retry).
KEEP_ALIVE_SECONDS = 30


def _echo(message: str = "", file: TextIO | None = None) -> None:
    """CLI output (library code logs instead)."""
    (file or sys.stdout).write(f"{message}\n")


def _settings(args: argparse.Namespace) -> MemorySettings:
    settings = MemorySettings()
    if args.db:
        settings.memory_db_path = Path(args.db)
    return settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .kb import open_knowledge_base
    from .main import create_app

    settings = _settings(args)
    host = args.host or settings.memory_api_host
    port = args.port or settings.memory_api_port
    registry = ApiKeyRegistry.from_env()  # refuse to start without a key
    kb = open_knowledge_base(settings)  # fail fast on a corrupt database; a broken model means BM25 only
    stats = kb.store.stats(kb.model)
    if stats.documents == 0:
        logging.getLogger(__name__).warning(
            "the knowledge base %s is empty: index something with `python -m api.memory index PATH`",
            settings.memory_db_path,
        )
    app = create_app(settings, registry, kb)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            forwarded_allow_ips=trusted_proxies(),
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    finally:
        kb.store.close()
    return 0


def _progress(description: str, total: int) -> Any:
    """A progress bar on stderr (shown on a terminal only: ``disable=None``)."""
    from tqdm import tqdm

    unit = "file" if description == "indexing" else "chunk"
    return tqdm(total=total, unit=unit, desc=description, disable=None, file=sys.stderr)


def _index(args: argparse.Namespace) -> int:
    from .indexer import index_path
    from .kb import open_knowledge_base

    root = Path(args.path)
    if not root.exists():
        _echo(f"error: {root} does not exist", file=sys.stderr)
        return 2
    settings = _settings(args)
    kb = open_knowledge_base(settings)
    try:
        for warning in kb.warnings:
            _echo(f"warning: {warning}", file=sys.stderr)
        s = index_path(
            kb,
            root,
            source_prefix=args.source_prefix,
            prune=args.prune,
            exclude=args.exclude,
            progress=_progress,
            embed=not args.no_embed,
        )
    finally:
        kb.store.close()
    rate = s.files / s.seconds if s.seconds else 0.0
    _echo(
        f"indexed {s.files} files, {s.chunks} chunks in {s.seconds:.2f}s ({rate:.0f} files/s) into "
        f"{settings.memory_db_path}: {s.added} added, {s.replaced} replaced, {s.unchanged} unchanged, "
        f"{s.pruned} pruned, {s.skipped} skipped (binary/too large), {s.embedded} chunks embedded"
        + (f" ({s.embedded / s.embedding_seconds:.1f} chunks/s)" if s.embedded and s.embedding_seconds else "")
    )
    for source in s.undecodable:
        _echo(f"warning: {source} is not valid UTF-8; indexed with replacement characters", file=sys.stderr)
    for error in s.errors:
        _echo(f"warning: {error}", file=sys.stderr)
    return 0


def _query(args: argparse.Namespace) -> int:
    from .kb import open_knowledge_base

    kb = open_knowledge_base(_settings(args))
    try:
        found = kb.search(args.text, args.top_k, args.tenant)
    finally:
        kb.store.close()
    if args.json:
        _echo(
            json.dumps(
                [
                    {
                        "source": h.chunk.source,
                        "name": h.chunk.name,
                        "score": h.score,
                        "start_line": h.chunk.start_line,
                        "end_line": h.chunk.end_line,
                        "content": h.chunk.content,
                    }
                    for h in found.hits
                ],
                indent=2,
            )
        )
        return 0
    for warning in kb.warnings + found.warnings:
        _echo(f"warning: {warning}", file=sys.stderr)
    for i, h in enumerate(found.hits, 1):
        label = f" {h.chunk.name}" if h.chunk.name else ""
        _echo(f"{i:2}. {h.score:8.4f}  {h.chunk.source}:{h.chunk.start_line}-{h.chunk.end_line}{label}")
    if not found.hits:
        _echo("no results")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from .kb import open_knowledge_base

    settings = _settings(args)
    kb = open_knowledge_base(settings)
    try:
        s = kb.store.stats(kb.model)
    finally:
        kb.store.close()
    _echo(
        f"{settings.memory_db_path}: {s.documents} documents, {s.chunks} chunks, "
        f"{s.vectors} vectors ({kb.model or 'no embedder'}), {s.db_bytes / 1e6:.1f} MB"
    )
    for warning in kb.warnings:
        _echo(f"warning: {warning}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    # --db and -v are accepted before or after the command (SUPPRESS keeps a later default from erasing them).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=argparse.SUPPRESS, help="SQLite file (default: MEMORY_DB_PATH or data/memory.db)"
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    parser = argparse.ArgumentParser(
        prog="python -m api.memory", description="The knowledge base / memory API.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API", parents=[common])
    serve.add_argument("--host", help="default: MEMORY_API_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: MEMORY_API_PORT or 8001")
    serve.set_defaults(run=_serve)
    index = sub.add_parser("index", help="index a folder, a git checkout or a file", parents=[common])
    index.add_argument("path")
    index.add_argument("--source-prefix", default="", help="prepended to each relative path to form its source")
    index.add_argument(
        "--prune",
        action="store_true",
        help="delete what indexing PATH stored earlier (under the prefix) whose file is gone; documents added "
        "otherwise are kept",
    )
    index.add_argument(
        "--exclude", action="append", default=[], metavar="DIR", help="also skip folders with this name (repeatable)"
    )
    index.add_argument(
        "--no-embed", action="store_true", help="store chunks only; `serve` (or the next `index`) embeds them"
    )
    index.set_defaults(run=_index)
    query = sub.add_parser("query", help="search the knowledge base", parents=[common])
    query.add_argument("text")
    query.add_argument("--top-k", type=int, default=5)
    query.add_argument("--json", action="store_true")
    query.add_argument("--tenant", help="also search this tenant's documents (default: the shared base alone)")
    query.set_defaults(run=_query)
    stats = sub.add_parser("stats", help="counts and size", parents=[common])
    stats.set_defaults(run=_stats)
    args = parser.parse_args(argv)
    args.db = getattr(args, "db", None)
    args.verbose = getattr(args, "verbose", False)
    level = logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "query" and not 1 <= args.top_k <= 50:
        parser.error("--top-k must be between 1 and 50")
    try:
        return int(args.run(args))
    except ApiKeyConfigError as exc:
        _echo(f"error: {exc}", file=sys.stderr)
        return 2
    except (StoreError, EmbeddingError) as exc:
        _echo(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
