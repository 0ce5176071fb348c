"""Narrowing the category choice before the model chooses: the k category paths nearest to a product.

A 10,595-way enum is slow to compile and beyond a small model; a shortlist of the k nearest paths (by MiniLM
embeddings of the paths and of the product's query text) is neither. The model then chooses among them under
a constraint that holds only those k, so its answer is still always in the taxonomy.
"""

from __future__ import annotations

from collections.abc import Sequence

from tagger.product import Product
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.texts import CategoryText, QueryText, full_path, title_brand
from tagger.taxonomy import Category, Taxonomy


def query_text(product: Product) -> str:
    """What a product is searched by: its title and brand (descriptions repeat spec tables that blur the vector)."""
    return title_brand(product)


class Shortlister:
    """Top-k categories per product. Any `Embedder` works, so a better embedding model is a constructor argument;
    the texts embedded on each side are arguments too (`tagger.retrieval.texts`)."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        embedder: Embedder,
        k: int,
        query: QueryText = query_text,
        category_text: CategoryText = full_path,
    ) -> None:
        self.embedder = embedder
        self.index = CategoryIndex(taxonomy, self.embedder, category_text)
        self.k = k
        self.query = query

    @property
    def name(self) -> str:
        return f"shortlist:{self.embedder.name}:k={self.k}"

    def ranked(self, products: Sequence[Product], k: int | None = None) -> list[list[tuple[Category, float]]]:
        """Per product, the k (default: the shortlist's k) nearest categories with their cosine similarity to the
        product's query text, most similar first: what a confidence for the retrieved category is made of."""
        if not products:
            return []
        vectors = self.embedder.encode([self.query(p) for p in products])
        return self.index.nearest(vectors, self.k if k is None else k)

    def shortlist(self, products: Sequence[Product]) -> list[list[Category]]:
        return [[category for category, _ in ranked] for ranked in self.ranked(products)]
