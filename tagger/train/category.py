"""A category student: softmax regression over the pool products' MiniLM vectors, trained on their categories.

What the k-NN vote does with the pool (the 3 nearest labeled products vote), learned instead: one weight vector per
category seen in the pool, fitted by full-batch gradient descent on the cross-entropy with an L2 penalty, seeded
and deterministic (numpy only). It can only answer a category the pool holds, as the vote can. Measured against the
vote by benchmarks/bench_category_student.py; README, "Fine-tuning and distillation", says which wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.retrieval.embeddings import Vectors


@dataclass(frozen=True)
class StudentSettings:
    epochs: int = 300
    learning_rate: float = 2.0  # unit vectors: a large step is stable
    l2: float = 1e-4
    temperature: float = 0.05  # logits = vectors @ W / temperature start near cosine similarities


@dataclass
class CategoryStudent:
    categories: list[str]  # category ids, one per row of `weights`
    weights: np.ndarray  # (categories, dimensions)
    bias: np.ndarray  # (categories,)
    temperature: float

    @classmethod
    def fit(cls, vectors: Vectors, labels: Sequence[str], settings: StudentSettings | None = None) -> CategoryStudent:
        """Trained on unit `vectors` labeled with category ids; starts from each category's mean vector."""
        chosen = settings or StudentSettings()
        categories = sorted(set(labels))
        index = {c: i for i, c in enumerate(categories)}
        y = np.array([index[label] for label in labels])
        onehot = np.zeros((len(labels), len(categories)), dtype=np.float32)
        onehot[np.arange(len(labels)), y] = 1.0
        weights = (onehot.T @ vectors) / np.maximum(onehot.sum(axis=0), 1.0)[:, None]  # class centroids
        bias = np.zeros(len(categories), dtype=np.float32)
        for _ in range(chosen.epochs):
            probabilities = _softmax((vectors @ weights.T + bias) / chosen.temperature)
            error = (probabilities - onehot) / (len(labels) * chosen.temperature)
            weights -= chosen.learning_rate * (error.T @ vectors + chosen.l2 * weights)
            bias -= chosen.learning_rate * error.sum(axis=0)
        return cls(categories, weights.astype(np.float32), bias.astype(np.float32), chosen.temperature)

    def predict(self, vectors: Vectors) -> list[tuple[str, float]]:
        """Per vector: the most probable category id and its probability."""
        probabilities = _softmax((vectors @ self.weights.T + self.bias) / self.temperature)
        best = probabilities.argmax(axis=1)
        return [(self.categories[i], float(probabilities[row, i])) for row, i in enumerate(best)]

    def save(self, path: Path) -> None:
        np.savez(path, categories=np.array(self.categories), weights=self.weights, bias=self.bias,
                 temperature=np.array(self.temperature))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> CategoryStudent:
        with np.load(path) as data:
            return cls([str(c) for c in data["categories"]], data["weights"], data["bias"], float(data["temperature"]))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return result
