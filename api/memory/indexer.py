"""Index a folder or a git checkout into the knowledge base."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import time
import tokenize as pytokenize
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .embeddings import EmbeddingError
from .kb import KnowledgeBase

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
SKIP_DIRS = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",
        "node_modules",
        "bower_components",
        "build",
        "dist",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".eggs",
        ".idea",
        ".vscode",
        "site-packages",
        "vendor",
        "vendored",
        "_vendor",
        "third_party",
        "generated",
        "_generated",
        ".next",
        ".cache",
        "htmlcov",
        "coverage",
        "target",
    ]
)
SKIP_SUFFIXES = frozenset(
    [
        ".pyc",
        ".pyo",
        ".so",
        ".dll",
        ".dylib",
        ".exe",
        ".o",
        ".a",
        ".class",
        ".jar",
        ".whl",
        ".egg",
        ".zip",
        ".gz",
        ".bz2",
        ".xz",
        ".tgz",
        ".tar",
        ".7z",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".svg",
        ".pdf",
        ".mp3",
        ".mp4",
        ".wav",
        ".ogg",
        ".mov",
        ".ttf",
        ".otf",
        ".woff",
        ".woff2",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".npy",
        ".npz",
        ".pkl",
        ".pickle",
        ".bin",
        ".dat",
        ".min.js",
        ".map",
        ".lock",
    ]
)
SKIP_FILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "uv.lock", ".DS_Store"})
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", ".min.js", ".min.css", ".generated.py")


@dataclass
class IndexSummary:
    files: int = 0
    chunks: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    pruned: int = 0
    skipped: int = 0
    embedded: int = 0
    undecodable: list[str] = field(default_factory=list)  # indexed with U+FFFD replacements
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    embedding_seconds: float = 0.0  # of ``seconds``, the time spent embedding


def _skip_dir(name: str, path: Path) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info") or (path / "pyvenv.cfg").exists()


def _skip_file(path: Path) -> bool:
    name = path.name.lower()
    return (
        name in SKIP_FILES
        or name.endswith(GENERATED_SUFFIXES)
        or any(name.endswith(s) for s in SKIP_SUFFIXES)
        or path.is_symlink()
    )


def _git_files(root: Path) -> list[Path] | None:
    """Tracked and untracked-but-not-ignored files of a git checkout, or None if ``root`` is not one."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [root / p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def iter_files(root: Path, exclude: Collection[str] = ()) -> Iterator[Path]:
    """Candidate files under ``root`` (honouring .gitignore in a git checkout), minus skipped ones and
    folders named in ``exclude``."""
    excluded = frozenset(exclude)
    if root.is_file():
        yield root
        return
    listed = _git_files(root)
    if listed is not None:
        for path in sorted(listed):
            rel_parts = path.relative_to(root).parts
            if any(
                p in excluded or _skip_dir(p, root.joinpath(*rel_parts[: i + 1])) for i, p in enumerate(rel_parts[:-1])
            ):
                continue
            if path.is_file() and not _skip_file(path):
                yield path
        return
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in excluded and not _skip_dir(d, base / d))
        for name in sorted(filenames):
            path = base / name
            if not _skip_file(path):
                yield path


def read_text(path: Path) -> tuple[str, bool] | None:
    """(text, decoded_cleanly) of a text file; None for a binary or over-large file."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    if b"\0" in data[:8192]:
        return None
    encoding = "utf-8"
    if path.suffix == ".py":
        try:  # honour a PEP 263 coding cookie
            encoding, _ = pytokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError:
            encoding = "utf-8"
    try:
        return data.decode(encoding), True
    except (UnicodeDecodeError, LookupError):
        return data.decode("utf-8", "replace"), False


class ProgressBar(Protocol):
    """What :func:`index_path` reports progress to (a ``tqdm`` bar is one)."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def index_path(
    kb: KnowledgeBase,
    root: Path,
    source_prefix: str = "",
    prune: bool = False,
    exclude: Collection[str] = (),
    progress: Callable[[str, int], ProgressBar] | None = None,
    embed: bool = True,
) -> IndexSummary:
    """Index every text file under ``root`` into the shared base; sources are ``source_prefix`` + the path
    relative to ``root``. ``prune`` deletes what indexing ``root`` stored earlier (under the prefix) whose file is
    gone; documents added any other way (the HTTP API, another folder's index) are never pruned.

    Files are stored first, then every chunk still without a vector is embedded in large batches (sorted by
    length, so short chunks pay no padding); ``embed=False`` leaves that to a later run or to ``serve``.
    ``progress(description, total)`` makes a bar for each of the two phases.
    """
    started = time.perf_counter()
    summary = IndexSummary()
    root = root.resolve()
    origin = str(root)
    files = list(iter_files(root, exclude))
    base = root.parent if root.is_file() else root
    seen: set[str] = set()
    bar = progress("indexing", len(files)) if progress else _Silent()
    for path in files:
        bar.update(1)
        read = read_text(path)
        if read is None:
            summary.skipped += 1
            continue
        text, clean = read
        source = source_prefix + path.relative_to(base).as_posix()
        seen.add(source)
        if not clean:
            summary.undecodable.append(source)
            log.warning("%s is not valid UTF-8; indexed with replacement characters", source)
        result = kb.add(source, text, embed=False, origin=origin)
        summary.files += 1
        summary.embedded += result.embedded
        summary.chunks += result.chunks
        if result.status == "unchanged":
            summary.unchanged += 1
        elif result.status == "added":
            summary.added += 1
        else:
            summary.replaced += 1
        if result.warning:
            summary.errors.append(f"{source}: {result.warning}")
    if prune:
        for source in kb.store.sources(source_prefix, origin=origin):
            if source not in seen and kb.delete(source) is not None:
                summary.pruned += 1
    bar.close()
    if summary.added or summary.replaced or summary.pruned:
        kb.store.optimize()
    pending = kb.pending_vectors() if embed else 0
    if pending:
        bar = progress(f"embedding ({kb.model})", pending) if progress else _Silent()
        embedding_started = time.perf_counter()
        try:
            summary.embedded += kb.embed_missing(progress=bar.update)
        except EmbeddingError as exc:
            summary.errors.append(f"some chunks have no vector yet (BM25 still finds them): {exc}")
        finally:
            bar.close()
        summary.embedding_seconds = time.perf_counter() - embedding_started
    summary.seconds = time.perf_counter() - started
    return summary
