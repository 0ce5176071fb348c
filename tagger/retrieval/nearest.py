"""The retrieval baselines an LLM pipeline must beat, with no model call: MiniLM nearest category path, and the
categories of the nearest labeled examples (k-NN over the user's pool)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tagger.product import Product
from tagger.records import CategoryRef, Provenance, Record, TagRecord, Usage, model_free_provenance
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.examples import ExamplePool, vote
from tagger.taxonomy import Category, Taxonomy


def _records(products: Sequence[Product], chosen: Sequence[Category], seconds: float, made: Provenance) -> list[Record]:
    each = round(seconds / max(len(products), 1), 4)
    return [
        TagRecord(
            id=product.id,
            category=CategoryRef(id=category.id, path=list(category.path)),
            usage=Usage(seconds=each),
            provenance=made,
        )
        for product, category in zip(products, chosen, strict=True)
    ]


class NearestCategoryTagger:
    """Same `tag_batch` as the LLM pipeline, so the eval harness runs both on one sample. No attributes."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None = None) -> None:
        self.taxonomy = taxonomy
        self.embedder = embedder or Embedder()
        self.index = CategoryIndex(taxonomy, self.embedder)
        self.provenance = model_free_provenance(taxonomy, self.embedder.name, "minilm")

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        start = time.perf_counter()
        # Titles alone: descriptions repeat spec tables that pull the vector away from the product type.
        ranked = self.index.nearest(self.embedder.encode([p.title for p in products]), 1)
        return _records(products, [best[0][0] for best in ranked], time.perf_counter() - start, self.provenance)

    def close(self) -> None:
        pass


class NearestExampleTagger:
    """The pool's own answer: the category most of a product's k nearest labeled examples have (the nearest one's
    on a tie). What few-shot examples bring before any model reads them. No attributes."""

    def __init__(self, taxonomy: Taxonomy, pool: ExamplePool) -> None:
        self.pool = pool
        self.provenance = model_free_provenance(taxonomy, pool.embedder.name, "knn", pool.name)

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        start = time.perf_counter()
        # Cleaned as the pipeline's products are: a pool row with the product's content (a duplicate listing under
        # another id) is then its own row, left out, as the pipeline leaves it out (uncleaned, it voted for itself).
        cleaned = [self.pool.cleaner.clean(p).product for p in products]
        chosen = []
        for product, shots in zip(products, self.pool.nearest(cleaned), strict=True):
            if not shots:
                raise ValueError(f"product {product.id}: the example pool has no other product")
            chosen.append(vote(shots))
        return _records(products, chosen, time.perf_counter() - start, self.provenance)

    def close(self) -> None:
        pass
