"""A BERT sentence encoder (all-MiniLM-L6-v2 and its kin) in numpy: no torch, no download.

sentence-transformers runs this model as tokenizer → BertModel → mean pooling → L2 normalisation, on
PyTorch. The same computation fits in a hundred lines of numpy over the weights in ``model.safetensors``,
with the ``tokenizers`` library reading ``tokenizer.json``: the install shrinks from PyTorch's gigabytes to
about 36 MB of libraries beside the 90 MB of weights, and the vectors agree with sentence-transformers' to a
cosine of 0.9999 or better (``tests/memory/test_encoder.py`` checks a committed table of reference vectors).

Speed comes from not paying for padding: texts are sorted by token count and batched by a token budget, so
a batch's sequences have nearly the same length, and its activations stay in the CPU's cache. The linear
layers (where nearly all the arithmetic is) run as one matrix product over every token of a batch, with the
query, key and value projections fused; batches run on one thread per core.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BATCH_TOKENS = 512  # tokens per forward pass, padding included: enough for BLAS, and the activations stay in L2
MAX_BATCH = 64
PAD_TO = 8  # sequence lengths are rounded up to a multiple of this
FEW_ROWS = 64  # up to this many tokens in a forward pass, the linear layers multiply weight-first


class EncoderError(RuntimeError):
    """The model files are missing, unreadable or of an architecture this encoder does not run."""


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: np.ndarray  # (3 * hidden, hidden): query, key and value projections stacked
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EncoderError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise EncoderError(f"{path} is not a JSON object")
    return value


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias`` for a weight as PyTorch stores it, (out, in).

    With few rows (a query's tokens) OpenBLAS is markedly faster with the weight as the left operand,
    ``(weight @ x.T).T``; with many (a batch) the row-major product keeps the later steps on contiguous rows.
    """
    y = (weight @ x.T).T if len(x) <= FEW_ROWS else x @ weight.T
    y += bias
    return y


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    x = x - mean
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    x *= 1.0 / np.sqrt(var + eps)
    x *= weight
    x += bias
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Φ(x), in place; erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).

    numpy has no erf; this one keeps the vectors within float32 noise of sentence-transformers' (the tanh
    approximation of GELU is a different function).
    """
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * np.float32(1.061405429)
    poly += np.float32(-1.453152027)
    poly *= t
    poly += np.float32(1.421413741)
    poly *= t
    poly += np.float32(-0.284496736)
    poly *= t
    poly += np.float32(0.254829592)
    poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / sqrt 2)
    np.subtract(np.float32(1.0), poly, out=poly)  # erf(|x| / sqrt 2)
    np.copysign(poly, x, out=poly)  # erf(x / sqrt 2)
    poly += np.float32(1.0)
    poly *= np.float32(0.5)  # Φ(x)
    x *= poly
    return x


class BertEncoder:
    """Sentence vectors from a sentence-transformers BERT model directory (mean pooling, unit length)."""

    def __init__(self, model_dir: str | Path, max_seq_length: int | None = None, threads: int | None = None) -> None:
        self.path = Path(model_dir)
        self.threads = threads or min(4, os.cpu_count() or 1)
        config = _read_json(self.path / "config.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise EncoderError(f"{self.path}: not a BERT model with GELU ({config.get('model_type')!r})")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise EncoderError(f"{self.path}: position embeddings must be absolute")
        self._check_pooling()
        st_config = self.path / "sentence_bert_config.json"
        seq = _read_json(st_config).get("max_seq_length") if st_config.exists() else None
        self.max_seq_length = int(max_seq_length or seq or config.get("max_position_embeddings", 512))
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dimensions = self.hidden
        self._tokenizer = self._load_tokenizer()
        self._load_weights(int(config["num_hidden_layers"]))

    # -- loading ------------------------------------------------------------------------------------

    def _check_pooling(self) -> None:
        """Only mean pooling followed by normalisation is implemented; refuse any other recipe."""
        pooling = self.path / "1_Pooling" / "config.json"
        if pooling.exists():
            cfg = _read_json(pooling)
            modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
            if modes != ["pooling_mode_mean_tokens"]:
                raise EncoderError(f"{self.path}: pooling {modes} is not implemented (only mean pooling)")

    def _load_tokenizer(self) -> Any:
        # Its own thread pool buys nothing on texts this short, and a process that forks after using it (the
        # CLI's tests, a pre-fork server) would have to disable it with a warning.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise EncoderError(f"the tokenizers package is missing: {exc}") from exc
        path = self.path / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a missing or malformed file
            raise EncoderError(f"cannot load the tokenizer {path}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_seq_length)
        return tokenizer

    def _load_weights(self, layers: int) -> None:
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise EncoderError(f"the safetensors package is missing: {exc}") from exc
        path = self.path / "model.safetensors"
        try:
            w = load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
            raise EncoderError(f"cannot load the weights {path}: {exc}") from exc
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            key = prefix + name
            if key not in w:
                raise EncoderError(f"{path}: tensor {key} is missing")
            value = np.asarray(w[key], dtype=np.float32)
            if value.shape != shape:
                raise EncoderError(f"{path}: tensor {key} has shape {value.shape}, expected {shape}")
            if not np.isfinite(value).all():
                raise EncoderError(f"{path}: tensor {key} holds NaN or infinite values")
            return value

        h = self.hidden
        self._words = get("embeddings.word_embeddings.weight", (self._tokenizer.get_vocab_size(), h))
        positions = get(
            "embeddings.position_embeddings.weight", (w[prefix + "embeddings.position_embeddings.weight"].shape[0], h)
        )
        if positions.shape[0] < self.max_seq_length:
            raise EncoderError(f"{path}: {positions.shape[0]} positions < max_seq_length {self.max_seq_length}")
        # Every token type is 0 for a single sentence: fold its embedding into the position table.
        self._positions = positions + get("embeddings.token_type_embeddings.weight", (2, h))[0]
        self._embed_ln = (get("embeddings.LayerNorm.weight", (h,)), get("embeddings.LayerNorm.bias", (h,)))
        inter = w[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[0]
        self._layers: list[_Layer] = []
        for i in range(layers):
            p = f"encoder.layer.{i}."
            qkv = [get(f"{p}attention.self.{n}.weight", (h, h)) for n in ("query", "key", "value")]
            # Fold the 1/sqrt(head_dim) of the attention scores into the query projection.
            scale = np.float32(1 / math.sqrt(h // self.heads))
            qkv[0] = qkv[0] * scale
            qkv_bias = [get(f"{p}attention.self.{n}.bias", (h,)) for n in ("query", "key", "value")]
            qkv_bias[0] = qkv_bias[0] * scale
            self._layers.append(
                _Layer(
                    qkv=np.concatenate(qkv, axis=0),
                    qkv_bias=np.concatenate(qkv_bias),
                    out=get(f"{p}attention.output.dense.weight", (h, h)),
                    out_bias=get(f"{p}attention.output.dense.bias", (h,)),
                    ln1=(
                        get(f"{p}attention.output.LayerNorm.weight", (h,)),
                        get(f"{p}attention.output.LayerNorm.bias", (h,)),
                    ),
                    up=get(f"{p}intermediate.dense.weight", (inter, h)),
                    up_bias=get(f"{p}intermediate.dense.bias", (inter,)),
                    down=get(f"{p}output.dense.weight", (h, inter)),
                    down_bias=get(f"{p}output.dense.bias", (h,)),
                    ln2=(get(f"{p}output.LayerNorm.weight", (h,)), get(f"{p}output.LayerNorm.bias", (h,))),
                )
            )

    # -- encoding -----------------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text as sentence-transformers makes them ([CLS] … [SEP], truncated)."""
        return [e.ids for e in self._tokenizer.encode_batch([t.strip() for t in texts])]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dimensions) float32 matrix of unit-length sentence vectors."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        batches = list(_batches(ids))
        if self.threads > 1 and len(batches) > 1:
            # numpy releases the GIL in BLAS and in its loops: one batch per core beats one BLAS call on two.
            with ThreadPoolExecutor(self.threads, thread_name_prefix="encoder") as pool:
                for batch, vectors in zip(
                    batches, pool.map(self._forward_batch, [(ids, b) for b in batches]), strict=True
                ):
                    out[batch] = vectors
        else:
            for batch in batches:
                out[batch] = self._forward_batch((ids, batch))
        return out

    def _forward_batch(self, job: tuple[list[list[int]], list[int]]) -> np.ndarray:
        ids, batch = job
        return self._forward([ids[i] for i in batch])

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        b = len(ids)
        # Padded to a multiple of 8 tokens (masked, so the vectors do not change): BLAS runs a short sequence's
        # products far faster on 16 rows than on 15.
        length = min(-(-max(len(x) for x in ids) // PAD_TO) * PAD_TO, len(self._positions))
        tokens = np.zeros((b, length), dtype=np.int64)
        mask = np.zeros((b, length), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        h, heads, d = self.hidden, self.heads, self.hidden // self.heads
        x = self._words[tokens] + self._positions[:length]
        x = _layer_norm(x.reshape(b * length, h), *self._embed_ln, self.eps)
        # Padding gets a large negative score, as in BertModel's extended attention mask.
        bias = ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        for layer in self._layers:
            qkv = _linear(x, layer.qkv, layer.qkv_bias).reshape(b, length, 3, heads, d)
            qkv = qkv.transpose(2, 0, 3, 1, 4)  # (3, b, heads, length, d)
            scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2)
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(b * length, h)
            attn = _linear(context, layer.out, layer.out_bias)
            attn += x
            x = _layer_norm(attn, *layer.ln1, self.eps)
            down = _linear(_gelu(_linear(x, layer.up, layer.up_bias)), layer.down, layer.down_bias)
            down += x
            x = _layer_norm(down, *layer.ln2, self.eps)
        x = x.reshape(b, length, h)
        pooled = np.einsum("blh,bl->bh", x, mask) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _batches(ids: Sequence[Sequence[int]]) -> Iterator[list[int]]:
    """Indices of ``ids`` grouped by similar length, each group within the token budget."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batch: list[int] = []
    for i in order:
        longest = len(ids[i])  # sorted: the newcomer is the longest of its batch
        if batch and (longest * (len(batch) + 1) > BATCH_TOKENS or len(batch) >= MAX_BATCH):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
