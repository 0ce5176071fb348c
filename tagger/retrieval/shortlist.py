"""Narrowing the category choice before the model chooses: the k category paths nearest to a product.

A 10,595-way enum is slow to compile and beyond a small model; a shortlist of the k nearest paths (by MiniLM
embeddings of the paths and of the product's title and brand) is neither. The model then chooses among them under
a constraint that holds only those k, so its answer is still always in the taxonomy.
"""

from __future__ import annotations

from collections.abc import Sequence

from tagger.product import Product
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.taxonomy import Category, Taxonomy


def query_text(product: Product) -> str:
    """What a product is searched by: its title and brand (descriptions repeat spec tables that blur the vector)."""
    brand = product.fields.get("brand")
    return f"{product.title} ({brand})" if brand else product.title


class Shortlister:
    """Top-k categories per product. Any `Embedder` works, so a better embedding model is a constructor argument."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder, k: int) -> None:
        self.embedder = embedder
        self.index = CategoryIndex(taxonomy, self.embedder)
        self.k = k

    @property
    def name(self) -> str:
        return f"shortlist:{self.embedder.name}:k={self.k}"

    def shortlist(self, products: Sequence[Product]) -> list[list[Category]]:
        if not products:
            return []
        vectors = self.embedder.encode([query_text(p) for p in products])
        return [[category for category, _ in ranked] for ranked in self.index.nearest(vectors, self.k)]
