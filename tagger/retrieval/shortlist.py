"""Narrowing the category choice before the model chooses: the k category paths nearest to a product.

A 10,595-way enum is slow to compile and beyond a small model; a shortlist of the k nearest categories (by MiniLM
embeddings of each category's last two levels, "Parent > Leaf", and of the product's title and the start of its
description) is neither. The model then chooses among them under a constraint that holds only those k, so its answer
is still always in the taxonomy. Both texts were chosen by benchmarks/bench_category_text.py on the dev sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tagger.product import Product
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.texts import CategoryText, QueryText, leaf_parent, title_description
from tagger.taxonomy import Category, Taxonomy


def _label(text: QueryText | CategoryText) -> str:
    return getattr(text, "__name__", type(text).__name__)


# What a product is searched by: its title and the first 1,000 characters of its (cleaned) description. What a
# category is found by: its last two levels, "Parent > Leaf". Measured on the held-out halves of three dev sets
# (benchmarks/bench_category_text.py; README, "Which texts retrieval embeds"): category exact 0.497 against 0.371 for
# title + brand against the full path, the default before.
query_text: QueryText = title_description
category_text: CategoryText = leaf_parent
# The confidence of the nearest category: its share of a softmax over the similarities of the CONFIDENCE_K nearest,
# at this temperature. It separated right from wrong best of the raw scores measured (AUROC 0.65 on the held-out
# halves, against 0.54 for the top similarity alone and 0.59 for the margin to the second): a ranking score, not a
# calibrated probability.
CONFIDENCE_K = 10
CONFIDENCE_TEMPERATURE = 0.2


def softmax_share(similarities: Sequence[float], temperature: float = CONFIDENCE_TEMPERATURE) -> float:
    """The first of `similarities` (most similar first) as a share of their softmax at `temperature`."""
    if not similarities:
        raise ValueError("no similarities to take a share of")
    top = similarities[0]
    return 1.0 / sum(math.exp((s - top) / temperature) for s in similarities)


class Shortlister:
    """Top-k categories per product. Any `Embedder` works, so a better embedding model is a constructor argument;
    the texts embedded on each side are arguments too (`tagger.retrieval.texts`)."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        embedder: Embedder,
        k: int,
        query: QueryText = query_text,
        index_text: CategoryText = category_text,
    ) -> None:
        self.embedder = embedder
        self.index = CategoryIndex(taxonomy, self.embedder, index_text)
        self.k = k
        self.query = query
        self.index_text = index_text

    @property
    def name(self) -> str:
        """Part of every record's provenance and so of the result cache's key: it names the texts embedded, so a
        result retrieved with other texts is never served for these."""
        texts = f"{_label(self.query)}/{_label(self.index_text)}"
        return f"shortlist:{self.embedder.name}:k={self.k}:{texts}"

    def ranked(self, products: Sequence[Product], k: int | None = None) -> list[list[tuple[Category, float]]]:
        """Per product, the k (default: the shortlist's k) nearest categories with their cosine similarity to the
        product's query text, most similar first: what a confidence for the retrieved category is made of."""
        if not products:
            return []
        vectors = self.embedder.encode([self.query(p) for p in products])
        return self.index.nearest(vectors, self.k if k is None else k)

    def shortlist(self, products: Sequence[Product]) -> list[list[Category]]:
        return [[category for category, _ in ranked] for ranked in self.ranked(products)]

    def scored(self, products: Sequence[Product]) -> list[tuple[list[Category], float]]:
        """Per product, its shortlist and the nearest category's softmax share among the CONFIDENCE_K nearest."""
        found = []
        for ranked in self.ranked(products, max(self.k, CONFIDENCE_K)):
            share = softmax_share([similarity for _, similarity in ranked[:CONFIDENCE_K]])
            found.append(([category for category, _ in ranked[: self.k]], share))
        return found
