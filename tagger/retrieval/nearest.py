"""The MiniLM baseline: each product gets the category whose path embedding is nearest to its title's."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tagger import __version__
from tagger.product import Product
from tagger.records import CategoryRef, Provenance, Record, TagRecord, Usage
from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.taxonomy import Category, Taxonomy


class NearestCategoryTagger:
    """Same `tag_batch` as the LLM pipeline, so the eval harness runs both on one sample. No attributes."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None = None) -> None:
        self.taxonomy = taxonomy
        self.embedder = embedder or Embedder()
        self.index = CategoryIndex(taxonomy, self.embedder)
        self.provenance = Provenance(
            model=self.embedder.name,
            backend="minilm",
            template="-",
            template_hash="-",
            taxonomy=taxonomy.name,
            taxonomy_version=taxonomy.version,
            taxonomy_fingerprint=taxonomy.fingerprint,
            tagger_version=__version__,
            decoding={},
            cleaning="off",
        )

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        start = time.perf_counter()
        # Titles alone: descriptions repeat spec tables that pull the vector away from the product type.
        vectors = self.embedder.encode([p.title for p in products])
        ranked = self.index.nearest(vectors, 1)
        seconds = (time.perf_counter() - start) / max(len(products), 1)
        return [
            TagRecord(
                id=product.id,
                category=CategoryRef(id=best[0][0].id, path=list(best[0][0].path)),
                usage=Usage(seconds=round(seconds, 4)),
                provenance=self.provenance,
            )
            for product, best in zip(products, ranked, strict=True)
        ]

    def close(self) -> None:
        pass
