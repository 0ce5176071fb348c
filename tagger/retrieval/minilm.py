"""A BERT sentence encoder in plain numpy, for sentence-transformers folders such as all-MiniLM-L6-v2.

It reads the folder's `model.safetensors` (parsed here: the format is a JSON header and raw little-endian arrays),
`config.json`, `sentence_bert_config.json` and `tokenizer.json` (through the `tokenizers` library), and computes what
sentence-transformers computes for such a model: BERT's encoder, mean pooling over the real tokens, unit length.
It needs no torch: numpy's matrix products (BLAS) do the work, and a 6-layer, 384-wide model is small enough that
they are as fast as torch's on a CPU (benchmarks/bench_embeddings.py).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}


class UnsupportedModel(ValueError):
    """The folder is not a BERT encoder with mean pooling, which is all this encoder computes."""


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """All tensors of a .safetensors file as numpy arrays (float16 is widened to float32)."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise UnsupportedModel(f"{path}: tensor {name} has dtype {spec['dtype']}, not F32, F16 or I64")
        start, end = spec["data_offsets"]
        little = np.dtype(dtype).newbyteorder("<")
        array = np.frombuffer(data, little, count=(end - start) // little.itemsize, offset=base + start)
        array = array.reshape(spec["shape"])
        tensors[name] = array.astype(np.float32) if dtype == np.float16 else array
    return tensors


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    out: Array = centered / np.sqrt(variance + eps) * weight + bias
    return out


def _gelu_(x: Array) -> Array:
    """BERT's "gelu" (the exact erf form), in place: x * (1 + erf(x / sqrt(2))) / 2.

    numpy has no erf: Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, under float32's own rounding at
    BERT's scale). In place, with two scratch arrays, because temporaries of this size cost more than the arithmetic.
    """
    a = np.abs(x) * np.float32(0.7071067811865476)  # |x| / sqrt(2)
    t = np.multiply(a, np.float32(0.3275911))
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.multiply(t, np.float32(1.061405429))
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|x| / sqrt(2))
    # With E = 1 - erf(|x| / sqrt(2)): x >= 0 gives x - x E / 2, x < 0 gives x E / 2; both are max(x, 0) - |x| E / 2.
    np.abs(x, out=a)
    poly *= a
    poly *= np.float32(0.5)
    np.maximum(x, np.float32(0.0), out=x)
    x -= poly
    return x


class _Layer:
    def __init__(self, weights: dict[str, npt.NDArray[Any]], prefix: str) -> None:
        def w(name: str) -> Array:
            return np.ascontiguousarray(weights[f"{prefix}.{name}"], dtype=np.float32)

        def linear(name: str) -> tuple[Array, Array]:
            # Stored (out, in) as torch keeps them; x @ W.T is x @ (the transpose made contiguous once).
            return np.ascontiguousarray(w(f"{name}.weight").T), w(f"{name}.bias")

        q, k, v = (linear(f"attention.self.{n}") for n in ("query", "key", "value"))
        # Query, key and value in one product: (hidden, 3 * hidden).
        self.qkv_w = np.ascontiguousarray(np.concatenate([q[0], k[0], v[0]], axis=1))
        self.qkv_b = np.concatenate([q[1], k[1], v[1]])
        self.out_w, self.out_b = linear("attention.output.dense")
        self.ln1 = (w("attention.output.LayerNorm.weight"), w("attention.output.LayerNorm.bias"))
        self.up_w, self.up_b = linear("intermediate.dense")
        self.down_w, self.down_b = linear("output.dense")
        self.ln2 = (w("output.LayerNorm.weight"), w("output.LayerNorm.bias"))


class BertEncoder:
    """Encodes texts to unit vectors as sentence-transformers does for a BERT model with mean pooling."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self._check(folder, config)
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        st_config = folder / "sentence_bert_config.json"
        max_len = json.loads(st_config.read_text()).get("max_seq_length", 512) if st_config.is_file() else 512
        self.max_len = min(int(max_len), int(config["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_len)

        weights = read_safetensors(folder / "model.safetensors")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.word = np.asarray(weights[f"{prefix}embeddings.word_embeddings.weight"], dtype=np.float32)
        self.position = np.asarray(weights[f"{prefix}embeddings.position_embeddings.weight"], dtype=np.float32)
        self.token_type = np.asarray(weights[f"{prefix}embeddings.token_type_embeddings.weight"], dtype=np.float32)
        self.embed_ln = (
            np.asarray(weights[f"{prefix}embeddings.LayerNorm.weight"], dtype=np.float32),
            np.asarray(weights[f"{prefix}embeddings.LayerNorm.bias"], dtype=np.float32),
        )
        self.layers = [_Layer(weights, f"{prefix}encoder.layer.{i}") for i in range(int(config["num_hidden_layers"]))]

    @staticmethod
    def _check(folder: Path, config: dict[str, Any]) -> None:
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            raise UnsupportedModel(f"{folder}: a BERT model with absolute positions is needed, not {config}")
        if config.get("hidden_act") != "gelu":
            raise UnsupportedModel(f"{folder}: hidden_act {config.get('hidden_act')!r}, only 'gelu' is computed")
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.is_file():
            modes = {k for k, v in json.loads(pooling.read_text()).items() if k.startswith("pooling_mode") and v}
            if modes != {"pooling_mode_mean_tokens"}:
                raise UnsupportedModel(f"{folder}: pooling {sorted(modes)}, only mean pooling is computed")

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Array:
        ids = self.tokenize(texts)
        out = np.empty((len(ids), self.word.shape[1]), dtype=np.float32)
        # Texts of similar length share a batch, so little of a batch is padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._encode_batch([ids[i] for i in chunk])
        return out

    def states(self, ids: Sequence[int], type_ids: Sequence[int]) -> Array:
        """The last layer's vector of every token of one encoded sequence (a sentence pair's type ids given)."""
        tokens = np.asarray([ids], dtype=np.int64)
        x = self._hidden(tokens, np.ones(tokens.shape, dtype=np.float32), np.asarray([type_ids], dtype=np.int64))
        first: Array = x[0]
        return first

    def _encode_batch(self, ids: list[list[int]]) -> Array:
        width = max(len(row) for row in ids)
        tokens = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = self._hidden(tokens, mask, np.zeros(tokens.shape, dtype=np.int64))
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Array = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

    def _hidden(self, tokens: npt.NDArray[np.int64], mask: Array, types: npt.NDArray[np.int64]) -> Array:
        width = tokens.shape[1]
        x = self.word[tokens] + self.position[:width] + self.token_type[types]
        x = _layer_norm(x, *self.embed_ln, self.eps)
        # Padding keys get a large negative score, so they take no attention.
        bias = ((1.0 - mask) * np.float32(-1e30))[:, None, None, :]
        for layer in self.layers:
            x = self._layer(x, bias, layer)
        return x

    def _layer(self, x: Array, bias: Array, layer: _Layer) -> Array:
        batch, width, hidden = x.shape
        head = hidden // self.heads
        qkv = (x.reshape(-1, hidden) @ layer.qkv_w + layer.qkv_b).reshape(batch, width, 3, self.heads, head)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2)
        scores *= np.float32(1.0 / np.sqrt(head))
        scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores, out=scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(-1, hidden)
        attended = _layer_norm(
            (context @ layer.out_w + layer.out_b).reshape(batch, width, hidden) + x, *layer.ln1, self.eps
        )
        up = attended.reshape(-1, hidden) @ layer.up_w
        up += layer.up_b
        _gelu_(up)
        down = cast(Array, (up @ layer.down_w + layer.down_b).reshape(batch, width, hidden))
        return _layer_norm(down + attended, *layer.ln2, self.eps)
