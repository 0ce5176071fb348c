"""Few-shot examples from a labeled pool: the user's own tagged products, the nearest shown to the model.

The pool is a JSONL file of products with their category (a full path, a taxonomy id, or tagger's own record shape
`{"id": ..., "path": [...]}`) and optional attribute values. For each product the k most similar pool products (by
MiniLM embeddings of title and brand) become example turns in the prompt. A product is never its own example: pool
items with the same id or the same cleaned content are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tagger.calibrate import FOLDS, Curve, fold_of
from tagger.calibrate.fit import fitted_curve
from tagger.clean import Cleaner, content_key
from tagger.errors import TaggerError
from tagger.product import Columns, Product, ProductError, product_from_record
from tagger.retrieval.embeddings import Embedder, Vectors
from tagger.retrieval.texts import title_brand
from tagger.taxonomy import PATH_SEPARATOR, Category, Taxonomy


@dataclass(frozen=True)
class PoolItem:
    product: Product
    category: Category
    attributes: dict[str, list[str]] = field(default_factory=dict)


def category_of(value: Any, taxonomy: Taxonomy) -> Category | None:
    """A pool row's category: an id, a path string, a path list, or a record's {id, path}; None when not in it."""
    if isinstance(value, dict):
        value = value.get("id") if value.get("id") in taxonomy.categories else value.get("path")
    if isinstance(value, list):
        value = PATH_SEPARATOR.join(map(str, value))
    if not isinstance(value, str):
        return None
    return taxonomy.categories.get(value) or taxonomy.by_path.get(value)


def read_pool(path: Path, taxonomy: Taxonomy, columns: Columns | None = None) -> list[PoolItem]:
    """The labeled products of a JSONL file; rows without a category of this taxonomy are skipped."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaggerError(f"example pool {path}, line {row}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise TaggerError(f"example pool {path}, line {row}: not a JSON object")
            category = category_of(record.get("category"), taxonomy)
            if category is None:
                continue
            try:
                product = product_from_record(record, row, columns)
            except ProductError as exc:
                raise TaggerError(f"example pool {path}: {exc}") from exc
            items.append(PoolItem(product, category, dict(record.get("attributes") or {})))
    return items


example_text = title_brand  # what a product and a pool item are compared by


def vote(shots: Sequence[PoolItem]) -> Category:
    """The category most of `shots` (nearest first) have; the nearest one's among equals."""
    counts = Counter(s.category.id for s in shots)
    best = max(counts.values())
    return next(s.category for s in shots if counts[s.category.id] == best)


class ExamplePool:
    """Labeled products and their vectors; `nearest` gives each product its k most similar others."""

    def __init__(
        self,
        items: Sequence[PoolItem],
        embedder: Embedder,
        k: int,
        cleaner: Cleaner | None = None,
    ) -> None:
        if not items:
            raise ValueError("the example pool is empty")
        # Cleaned as the products they are compared with are, so that a product's own row is recognized by content.
        self.cleaner = cleaner or Cleaner()
        self.items = [PoolItem(self.cleaner.clean(i.product).product, i.category, i.attributes) for i in items]
        self.embedder = embedder
        self.k = k
        # Product to product by title and brand: the k-NN vote and the gates were measured so (the category query
        # text, tagger.retrieval.shortlist.query_text, was measured for product to category path only).
        self._vectors: Vectors = self.embedder.encode([example_text(i.product) for i in self.items])
        self._keys = [content_key(i.product) for i in self.items]
        self._by_key = {k: n for n, k in enumerate(self._keys)}
        self._by_id = {i.product.id: n for n, i in enumerate(self.items)}
        digest = hashlib.sha256("\n".join(f"{i.product.id}\t{i.category.id}" for i in self.items).encode())
        self.fingerprint = digest.hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"examples:{self.embedder.name}:k={self.k}:pool={self.fingerprint}"

    def nearest(
        self, products: Sequence[Product], categories: Sequence[Category] | None = None
    ) -> list[list[PoolItem]]:
        """The k most similar pool items per product; with `categories` (one per product, known already), only
        items of that category: their answers have the shape the product's own answer must have."""
        if not products:
            return []
        scores = self.embedder.encode([example_text(p) for p in products]) @ self._vectors.T
        order = np.argsort(-scores, axis=1)
        wanted: Sequence[Category | None] = categories or [None] * len(products)
        found = []
        for product, ranked, category in zip(products, order, wanted, strict=True):
            key = content_key(product)
            own = (
                self.items[i]
                for i in ranked
                if self.items[i].product.id != product.id
                and self._keys[i] != key
                and (category is None or self.items[i].category.id == category.id)
            )
            found.append([item for _, item in zip(range(self.k), own, strict=False)])
        return found

    # --- how often the vote is right -----------------------------------------------------------------------------

    def vote_confidence(self, product: Product, share: float) -> float:
        """The probability that the examples' vote is right at this share of the vote, measured on the pool itself:
        each pool product voted on by its k nearest others (leave-one-out), isotonic regression of "right" over the
        share. A product of the pool reads the curve fitted without its fold, so its own vote never counts for it."""
        curves = self._vote_curves
        own = self._by_key.get(content_key(product), self._by_id.get(product.id))
        return curves[-1 if own is None else fold_of(self.items[own].product.id)].probability(share)

    @cached_property
    def _vote_curves(self) -> list[Curve]:
        """One curve per fold (fitted without it), and last the whole pool's."""
        scores = self._vectors @ self._vectors.T
        votes: list[tuple[int, float, bool]] = []
        for i, ranked in enumerate(np.argsort(-scores, axis=1)):
            item = self.items[i]
            # Only the product itself is left out: its duplicates (variants, relisted rows) are neighbours as they
            # are for a product of the catalog that is not in the pool.
            others = (self.items[j] for j in ranked if j != i)
            shots = [other for _, other in zip(range(self.k), others, strict=False)]
            if shots:
                chosen = vote(shots)
                # Rounded as the records' scores are, which the curve is read at (2/3 is 0.6667 there).
                share = round(sum(s.category.id == chosen.id for s in shots) / len(shots), 4)
                votes.append((fold_of(item.product.id), share, chosen.id == item.category.id))
        return [fitted_curve([(s, r) for f, s, r in votes if f != fold]) for fold in range(FOLDS)] + [
            fitted_curve([(s, r) for _, s, r in votes])
        ]
